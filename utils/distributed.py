"""여러 프로세스 학습(DDP)의 준비와 뒷정리: torchrun 이 준 환경 변수로 프로세스 그룹 열고 닫기, rank 0 판별.

DDP 로 감싸기, DistributedSampler, 지표를 더하는 all_reduce 는 03·08 장에 그대로 보입니다. 여기에는 두 장이
똑같이 쓰는 준비·뒷정리만 둡니다. torchrun 없이 실행하면 모든 함수가 '프로세스 하나'로 동작합니다
(`start` → pick_device 와 같음, `is_main()` → True, `barrier()` → 아무 일 없음, `run_on_main(fn)` → fn()).

`torchrun --nproc_per_node=N script.py` 는 스크립트를 N 번 띄우고 프로세스마다 환경 변수를 줍니다:

    RANK              전체 프로세스 중 몇 번째 (0 … WORLD_SIZE-1). 0 번(rank 0)이 출력·그림·저장을 맡음
    LOCAL_RANK        이 기계 안에서 몇 번째 → 이 프로세스가 쓸 GPU 번호 (cuda:LOCAL_RANK)
    WORLD_SIZE        전체 프로세스 수 (기계 수 × 기계마다 프로세스 수)
    LOCAL_WORLD_SIZE  이 기계의 프로세스 수 (--nproc_per_node)
    MASTER_ADDR, MASTER_PORT  모든 프로세스가 처음 만나는 곳(TCPStore)의 주소와 포트

import 할 때는 아무 일도 하지 않습니다.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from utils.runtime import UserError, pick_device

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def launched_by_torchrun() -> bool:
    """torchrun(또는 같은 환경 변수를 주는 srun·mpirun 설정) 아래에서 실행되었는지."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """프로세스 그룹이 열려 있는지 (`start` 가 torchrun 아래에서 연 뒤 True)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """출력·그림·체크포인트·metrics.json 을 맡는 프로세스인지 (rank 0, 또는 분산이 아닐 때)."""
    return rank() == 0


def barrier() -> None:
    """모든 프로세스가 여기 올 때까지 기다립니다 (예: rank 0 이 체크포인트를 다 쓸 때까지)."""
    if is_distributed():
        dist.barrier()


def start(device_name: str, timeout_seconds: float, batch_size: int) -> torch.device:
    """torchrun 아래면 프로세스 그룹에 들어가고 이 프로세스의 장치를 돌려줍니다. 아니면 `pick_device` 그대로.

    - 백엔드(backend): CUDA 면 nccl (GPU 끼리 직접), CPU 면 gloo. 장치는 cuda:LOCAL_RANK.
    - 사용자가 고칠 수 있는 문제는 그룹에 들어가기 전에 한 줄(UserError): 전체 배치가 프로세스 수로
      나누어떨어지지 않음, 이 기계의 GPU 보다 많은 --nproc_per_node, DDP 를 쓸 수 없는 장치(mps).
    - MASTER_ADDR:MASTER_PORT 에 닿지 못하거나 다른 프로세스가 오지 않으면 `timeout_seconds` 뒤에 한 줄.
    - rank 0 이 아닌 프로세스의 표준 출력은 버립니다 (같은 줄이 N 번 찍히지 않게; 오류 줄은 stderr 로 남음).
    - Ctrl+C: 터미널과 torchrun 이 같은 SIGINT 를 두 번 보내므로, 첫 번째만 KeyboardInterrupt 로 받습니다.
    """
    device = pick_device(device_name)
    if not launched_by_torchrun():
        return device
    world = int(os.environ["WORLD_SIZE"])
    if batch_size % world:
        raise UserError(f"--batch-size {batch_size} 는 전체 배치 크기라 프로세스 수 {world} 로 "
                        f"나누어떨어져야 합니다 (프로세스마다 batch-size/{world} 장). 예: --batch-size "
                        f"{max(world, batch_size // world * world)}")
    if not dist.is_available():
        raise UserError("이 PyTorch 빌드는 torch.distributed 를 지원하지 않아 torchrun 으로 실행할 수 "
                        "없습니다.")
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
        if max(local_world, local_rank + 1) > torch.cuda.device_count():
            raise UserError(f"--nproc_per_node={local_world} 이지만 이 기계의 GPU 는 "
                            f"{torch.cuda.device_count()}개입니다. GPU 하나에 프로세스 하나: "
                            f"--nproc_per_node={torch.cuda.device_count()} 이하로 실행하세요.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"DDP 는 {device.type} 장치를 지원하지 않습니다. --device cpu 로 실행하세요.")
    backend = "nccl" if device.type == "cuda" else "gloo"
    # 만나지 못하면 C++(c10d)가 재시도 경고와 C++ 스택을 stderr 에 직접 씁니다. 그동안의 stderr 를 임시 파일로
    # 받아 두었다가, 성공하면 그대로 되돌려 보이고 실패하면 아래 한 줄로 바꿉니다.
    with tempfile.TemporaryFile() as native_log:
        try:
            with _stderr_to(native_log):
                dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds),
                                        device_id=device if device.type == "cuda" else None)
        except (RuntimeError, ValueError) as error:  # dist.DistError(DistStoreError 등)도 RuntimeError
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise UserError(f"다른 프로세스와 만나지 못했습니다 (약속 장소 {where}, {timeout_seconds:g}초 "
                            f"기다림: {reason}). 주소·포트·방화벽과, 모든 기계에서 같은 명령을 실행했는지 "
                            "확인하세요 (기다리는 시간은 --dist-timeout).") from None
        native_log.seek(0)
        sys.stderr.write(native_log.read().decode("utf-8", errors="replace"))
    if dist.get_rank() != 0:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # 프로세스가 끝날 때까지 씀
    signal.signal(signal.SIGINT, _interrupt_once)
    return device


@contextmanager
def _stderr_to(file) -> Iterator[None]:
    """파일 기술자 2(stderr)를 잠시 `file` 로: C++ 코드가 sys.stderr 를 거치지 않고 쓰는 것까지 받음."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _interrupt_once(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # 두 번째 Ctrl+C(torchrun 이 다시 보냄)는 뒷정리를 끊지 않게
    raise KeyboardInterrupt


def end() -> bool:
    """프로세스 그룹을 닫습니다. 반환: 이 프로세스가 뒤의 일을 맡는지 (rank 0, 또는 분산이 아니면 True).

    장은 시험 평가까지 모든 프로세스가 함께 하고 여기서 그룹을 닫습니다: 그 뒤(그림, 부록 실험, 기록)는
    rank 0 혼자 평범한 한 프로세스로 하고, 다른 프로세스는 여기서 바로 끝납니다 (`_leave_now`; 그룹이 열린
    채 rank 0 혼자 평가 함수를 부르면 없는 짝을 기다리게 됨). utils.runtime.run 도 main 이 끝날 때(오류·
    Ctrl+C 포함) 부르며, 그때는 모든 프로세스가 그 종료 코드로 바로 끝납니다. 그룹이 없거나 이미 닫혔으면
    닫을 것이 없습니다.
    """
    main_process = is_main()
    if is_distributed():
        dist.destroy_process_group()
        stopping = isinstance(sys.exc_info()[1], SystemExit)  # run() 이 오류·Ctrl+C 를 종료 코드로 바꾼 뒤
        if stopping or not main_process:
            _leave_now()
    return main_process


def _leave_now() -> None:
    """할 일이 끝난 DDP 프로세스를 파이썬의 종료 정리(interpreter finalization) 없이 바로 끝냅니다.

    gloo 의 C++ 작업 스레드는 끝난 통신(all_reduce 등)의 텐서를 조금 늦게 놓습니다. 그 순간 파이썬이 이미
    종료 정리 중이면 그 스레드가 GIL 을 잡으려다 강제로 끝나고 프로세스가 'terminate called without an
    active exception' (SIGABRT) 으로 죽습니다 — 학습은 다 끝났는데 torchrun 이 실패로 보고하는 드문 경쟁.
    (실제로 30번에 한 번쯤 일어남; pytorch/pytorch#179291 이 같은 원인.) 표준 출력·오류를 비우고
    os._exit 로 끝내면 정리 단계 자체가 없습니다. 종료 코드: 오류·Ctrl+C 로 끝나는 중이면 그 코드
    (run() 이 만든 SystemExit 의 2·130), 아니면 0. 여기 오기 전에 파일은 모두 닫혀 있습니다
    (체크포인트·기록은 rank 0 이 저장 함수 안에서 닫음).
    """
    error = sys.exc_info()[1]
    code = error.code if isinstance(error, SystemExit) else 0
    code = code if isinstance(code, int) else (0 if code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # 이미 닫힌 파이프(예: `| head`)
            pass
    os._exit(code)


def seed_epoch(seed: int, epoch: int, generators=()) -> None:
    """DDP: 이 epoch 의 난수(드롭아웃, 증강, 배치 순서)를 (seed, epoch, rank) 로 새로 정합니다.

    - rank 마다 다른 난수: 같은 시드면 모든 프로세스가 같은 드롭아웃 마스크·같은 자르기 위치를 씀.
    - 이어하기: 체크포인트에는 rank 0 의 난수 상태만 있습니다. 프로세스마다 뽑은 난수의 개수가 다르면
      (예: 08장은 rank 마다 문장 길이가 달라 드롭아웃 난수의 개수가 다름) 그 상태로는 다른 rank 를
      되살릴 수 없지만, epoch 마다 (seed, epoch, rank) 로 정하면 몇 번째 epoch 에서 이어 가든 같은 난수입니다.
    모델 초기화는 이 함수와 상관없이 모든 rank 가 같은 시드로 (DDP 도 감쌀 때 rank 0 의 가중치를 보냄).
    """
    value = (seed * 1_000 + epoch) * 1_000 + rank()
    torch.manual_seed(value)  # CPU 와 모든 GPU 의 전역 난수
    for generator in generators:
        generator.manual_seed(value)


def run_on_main(fn):
    """rank 0 에서만 `fn()` 을 실행하고 그 결과를 모든 프로세스에 나눠 줍니다 (분산이 아니면 그냥 fn()).

    체크포인트 읽기에 씁니다: 여러 기계로 학습하면 rank 0 이 쓴 last.pt·best.pt 는 rank 0 의 기계에만
    있으므로, rank 0 이 읽어 `broadcast_object_list` 로 보냅니다. fn 이 UserError 를 내면 모든 프로세스가
    같은 UserError 로 멈춥니다 (rank 0 만 멈추고 나머지가 기다리다 시간 초과되는 일이 없게).
    """
    if not is_distributed():
        return fn()
    box = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = (True, fn())
        except UserError as error:
            box[0] = (False, str(error))
    dist.broadcast_object_list(box, src=0)
    succeeded, value = box[0]
    if not succeeded:
        raise UserError(value)
    return value
