"""03·08장의 여러 프로세스 학습: torchrun + DistributedDataParallel (CPU 에서는 gloo 백엔드).

- torchrun 2 프로세스로 --smoke 와 짧은 실제 학습: 종료 코드 0, metrics.json 하나(rank 0 만 씀),
  평가한 시험 예제 수(test_examples) = 시험 세트 크기 (프로세스마다 나눠 평가해도 한 번씩만 셈).
- 동치: BatchNorm 이 없는 모델에서 2 프로세스 × B/2 의 한 걸음 = 1 프로세스 × B 의 한 걸음 (DDP 가 맞는
  까닭). BatchNorm 이 있으면 같지 않음 (03장이 CUDA 에서 SyncBatchNorm 을 쓰는 까닭). 두 장의 평가를
  프로세스 둘로 나눠 모은 값 = 한 프로세스의 값 (홀수 크기 세트: 채워 넣기·빠뜨리기·두 번 세기를 잡음).
- 모든 rank 에 Ctrl+C → `torchrun … --resume` = 끊지 않은 2 프로세스 실행. 2 프로세스의 last.pt 를
  torchrun 없이 한 프로세스로 이어 가기. 터미널의 Ctrl+C(프로세스 그룹 전체에 SIGINT)로 모두 끝남.
- 잘못된 입력: 다른 장의 체크포인트, 닿지 않는 약속 장소(MASTER_ADDR:MASTER_PORT), GPU 보다 많은 프로세스,
  프로세스 수로 나누어떨어지지 않는 배치 → "오류: …" 한 줄, 그 프로세스의 종료 코드 2.

torchrun 자신은 프로세스가 하나라도 0 이 아닌 코드로 끝나면 실패 요약(과 자신의 traceback)을 찍고 종료 코드
1 로 끝납니다. 그래서 torchrun 으로 띄운 시험은 그 요약에 적힌 프로세스들의 종료 코드(exitcode)를 봅니다.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from conftest import CHAPTERS, ROOT, load_chapter, run_script, smoke_args
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

from utils.data import color_images, translation
from utils.data.color_images import color_shapes
from utils.runtime import run

DDP_SCRIPTS = [p for p in CHAPTERS if p.name[:2] in ("03", "08")]
CH08 = next(p for p in DDP_SCRIPTS if p.name.startswith("08"))
IDS = [p.stem for p in DDP_SCRIPTS]
SMOKE_TEST_SIZE = {"03": color_images.SMOKE_TEST, "08": translation.SMOKE_PAIRS}
# 짧은 실제 학습 (--smoke 가 아닌 기본 데이터 전체, 1 epoch): 08 만. 03 의 torchrun 경로는 smoke[03]
# (시험 세트 한 번, rank 0 만 출력, module. 없는 체크포인트), Ctrl+C[03] (2 프로세스 이어하기 = 끊지 않은
# 실행, set_epoch), test_chapter_03_training_leaves_every_process_with_the_same_model, 기울기 동치 시험.
SHORT_RUN_FLAGS = ["--epochs", "1", "--beam", "1"]


def torchrun(script: Path, *args: str, nproc: int = 2, env: dict | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 script args` (CPU, 프로세스마다 1 스레드)."""
    return run_script("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script),
                      *args, env={"OMP_NUM_THREADS": "1", **(env or {})}, timeout=timeout)


def worker_exit_codes(result: subprocess.CompletedProcess) -> set[int]:
    """torchrun 의 실패 요약에 적힌 프로세스들의 종료 코드 (예: 'exitcode  : 2')."""
    return {int(code) for code in re.findall(r"exitcode\s*:\s*(-?\d+)", result.stdout + result.stderr)}


def chapter_traceback(result: subprocess.CompletedProcess, script: Path) -> bool:
    """장 스크립트 안에서 난 traceback 이 있는지 (torchrun 자신의 traceback 은 세지 않음)."""
    return f'File "{script}"' in result.stdout + result.stderr


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("오류:")]


def record_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))


_SMOKE: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}


@pytest.fixture
def ddp_smoke(tmp_path_factory):
    """장마다 한 번만 돌리는 torchrun 2 프로세스 --smoke 실행: script → (결과, 출력 폴더). 폴더는 읽기만."""
    def get(script: Path):
        if script.name not in _SMOKE:
            out_dir = tmp_path_factory.mktemp(f"ddp_smoke_{script.stem}")
            _SMOKE[script.name] = (torchrun(script, *smoke_args(out_dir)), out_dir)
        return _SMOKE[script.name]

    return get


# --- torchrun 2 프로세스: smoke 와 짧은 실제 학습 ------------------------------------------------------
def check_ddp_run(result: subprocess.CompletedProcess, out_dir: Path, script: Path, test_size: int) -> dict:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    record = record_of(out_dir)
    assert record["metrics"]["test_examples"] == test_size  # 시험 세트를 정확히 한 번 셈
    assert record["timing"]["processes"] == 2
    # rank 0 만 출력·기록: 첫 줄([DDP] …)과 마지막 줄이 한 번씩, 임시 파일(동시에 쓰다 남은 것) 없음
    assert result.stdout.count("[DDP] 프로세스 2개") == 1, result.stdout[:2000]
    assert sum(line.startswith("끝:") for line in result.stdout.splitlines()) == 1, result.stdout[-2000:]
    assert not list(out_dir.rglob("*.tmp"))
    last = torch.load(out_dir / "last.pt", map_location="cpu", weights_only=True)
    assert last["chapter"] == script.stem and not any(k.startswith("module.") for k in last["model"])
    history_lines = (out_dir / "history.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(history_lines) == 1 + last["epoch"] == 1 + len(last["history"])
    return record


@pytest.mark.parametrize("script", DDP_SCRIPTS, ids=IDS)
def test_torchrun_smoke_counts_the_test_set_once(script, ddp_smoke):
    result, out_dir = ddp_smoke(script)
    record = check_ddp_run(result, out_dir, script, SMOKE_TEST_SIZE[script.name[:2]])
    assert record["config"]["smoke"] is True and list(out_dir.glob("*.png"))


@pytest.mark.slow
def test_torchrun_short_real_run_learns_and_counts_the_test_set_once(tmp_path):
    flags = ["--data", "offline", "--device", "cpu", "--out-dir", str(tmp_path), *SHORT_RUN_FLAGS]
    result = torchrun(CH08, *flags)
    metrics = check_ddp_run(result, tmp_path, CH08, translation.OFFLINE_SIZES["test"])["metrics"]
    assert metrics["test_loss"] < 3.5, metrics  # 학습 전 ≈ ln(어휘 크기) ≈ 4.6


# --- 동치: 2 프로세스 × B/2 = 1 프로세스 × B --------------------------------------------------------------
B = 8  # 전체 배치 크기: 프로세스 둘이 4장씩


def make_models() -> dict[str, nn.Module]:
    """같은 시드의 작은 모델 둘: 03장의 MLP (BatchNorm 없음), 그리고 BatchNorm 이 있는 같은 크기의 망."""
    ch03 = load_chapter("03")
    torch.manual_seed(0)
    plain = ch03.MLP(num_classes=4, hidden_size=16, image_size=4)  # 입력 (B, 3, 4, 4)
    torch.manual_seed(0)
    batch_norm = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(),
                               nn.Linear(16, 4))
    return {"plain": plain, "batch_norm": batch_norm}


def one_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, wrap=lambda m: m) -> dict:
    """평균 교차 엔트로피로 SGD 한 걸음 뒤의 가중치. wrap=DDP 면 backward 도중 기울기를 all-reduce(평균)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    wrapped = wrap(model)  # DDP 객체가 backward 까지 살아 있어야 기울기 all-reduce 가 일어남
    F.cross_entropy(wrapped(images), labels).backward()
    optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(B, 3, 4, 4, generator=generator), torch.randint(0, 4, (B,), generator=generator)


ODD = 7  # 평가 세트 크기: 2 로 나누어떨어지지 않음 → DistributedSampler 처럼 채워 넣으면 8 개를 세게 됨


def evaluation_inputs():
    """평가 동치 시험의 재료: 03장 MLP 와 이미지 7장, 08장의 작은 트랜스포머와 시험 문장 7개."""
    ch03, ch08 = load_chapter("03"), load_chapter("08")
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (ODD, 3, 4, 4), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (ODD,), generator=generator)
    pairs, _, test_pairs = translation.make_english_korean(200, 0, ODD, seed=0)
    source_itos = ch08.build_vocab([ch08.tokenize(s) for s, _ in pairs], 1)
    target_itos = ch08.build_vocab([ch08.tokenize(t) for _, t in pairs], 1)
    test = ch08.encode_split(test_pairs, {w: i for i, w in enumerate(source_itos)},
                             {w: i for i, w in enumerate(target_itos)}, 32)
    torch.manual_seed(0)
    transformer = ch08.build_model(len(source_itos), len(target_itos), d_model=32, heads=4, layers=1, d_ff=64,
                                   dropout=0.0, max_len=32).eval()
    return ch03, ch08, images, labels, test, target_itos, transformer


def evaluate_both() -> dict:
    """03장 evaluate 와 08장 evaluate·translate_split (DDP 면 프로세스마다 몫을 평가해 모음)."""
    ch03, ch08, images, labels, test, target_itos, transformer = evaluation_inputs()
    device = torch.device("cpu")
    inputs = {"mean": torch.full((3,), 0.5), "std": torch.full((3,), 0.25), "device": device}
    config = ch08.Config(batch_size=1, max_len=32)  # 문장 하나씩: 배치 구성과 상관없이 같은 번역
    rows, hypotheses = ch08.translate_split(transformer, test, target_itos, device, config, beam=1)
    return {"ch03": ch03.evaluate(make_models()["plain"].eval(), images, labels, **inputs),
            "ch08_loss": ch08.evaluate(transformer, test, device, batch_size=1)["loss"],
            "ch08_rows": rows, "ch08_hypotheses": hypotheses}


def ddp_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    """mp.spawn 의 프로세스 하나: 전체 배치의 자기 몫 B/world 장으로 DDP 한 걸음, 그리고 두 장의 평가."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        images, labels = batch()
        share = slice(rank * B // world, (rank + 1) * B // world)
        results = {name: one_step(model, images[share], labels[share], wrap=DDP)
                   for name, model in make_models().items()}
        results["evaluation"] = evaluate_both()
        results["vgg_identical_on_every_rank"] = train_vgg_one_epoch(rank, world)
        if rank == 0:
            torch.save(results, out_file)
    finally:
        dist.destroy_process_group()


def train_vgg_one_epoch(rank: int, world: int) -> dict[str, bool]:
    """03장의 train_one_epoch 를 DDP 로 한 epoch (VGG: BatchNorm 있음, 증강, 드롭아웃). 끝난 뒤 모든 rank 의
    가중치와 BatchNorm 버퍼(이동 평균)가 같은지: 반환 {"weights": bool, "buffers": bool}."""
    ch03 = load_chapter("03")
    data = color_shapes(seed=0, train_size=32, test_size=8)
    mean, std = ch03.channel_stats(data.x_train)
    torch.manual_seed(0)
    model = ch03.build_model("vgg", 10, width=4, hidden_size=16)
    optimizer, scheduler = ch03.make_optimizer(model, ch03.Config(batch_size=16), epochs=1, steps_per_epoch=2)
    sampler = DistributedSampler(range(32), num_replicas=world, rank=rank, shuffle=True, seed=0)
    sampler.set_epoch(1)
    ch03.train_one_epoch(DDP(model), data, optimizer, scheduler, None, generator=torch.Generator(), mean=mean,
                         std=std, device=torch.device("cpu"), batch_size=16 // world, augment=True, amp=False,
                         epoch=1, sampler=sampler)
    identical = {}
    for name, tensors in (("weights", model.parameters()), ("buffers", model.buffers())):
        mine = torch.cat([t.detach().double().flatten() for t in tensors])
        everyone = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(everyone, mine)
        identical[name] = all(torch.equal(everyone[0], other) for other in everyone)
    return identical


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    """mp.spawn 으로 gloo 프로세스 둘 (torchrun 없이 같은 일): rank 0 이 모은 결과."""
    folder = tmp_path_factory.mktemp("spawn")
    mp.spawn(ddp_worker, args=(2, str(folder / "init"), str(folder / "ddp.pt")), nprocs=2, join=True)
    return torch.load(folder / "ddp.pt", weights_only=True)


def test_two_processes_with_half_batches_take_the_same_step_as_one_process(two_processes):
    """DDP 의 기울기 평균: (1/2)(∇L_앞 4장 + ∇L_뒤 4장) = ∇L_8장 (L 은 배치 평균). 그래서 같은 가중치."""
    images, labels = batch()
    single = {name: one_step(model, images, labels) for name, model in make_models().items()}
    before = make_models()["plain"].state_dict()
    assert any(not torch.equal(before[k], single["plain"][k]) for k in before)  # 정말 한 걸음 움직였는지
    torch.testing.assert_close(two_processes["plain"], single["plain"])
    # BatchNorm 은 프로세스마다 4장의 평균·분산으로 정규화하므로 8장과 다름 → CUDA 에서는 SyncBatchNorm
    assert not torch.allclose(two_processes["batch_norm"]["4.weight"], single["batch_norm"]["4.weight"],
                              atol=1e-4)


def test_chapter_03_training_leaves_every_process_with_the_same_model(two_processes):
    """DDP 는 기울기를 평균해 가중치를 같게 두지만, BatchNorm 의 이동 평균은 프로세스마다 자기 배치로 갱신됨:
    train_one_epoch 가 epoch 끝에 rank 0 의 값을 보내야 검증·체크포인트가 모두 같은 모델을 봄."""
    assert two_processes["vgg_identical_on_every_rank"] == {"weights": True, "buffers": True}


def test_evaluation_split_over_two_processes_equals_one_process(two_processes):
    """나눠서 평가하고 all_reduce / all_gather_object 로 모은 값 = 한 프로세스의 값. 세트 크기가 홀수(7)라
    DistributedSampler 처럼 채워 넣으면 8 개를 세고, 나누지 않으면 14 개, 모으지 않으면 3~4 개가 됨."""
    ddp, single = two_processes["evaluation"], evaluate_both()
    assert ddp["ch03"]["examples"] == single["ch03"]["examples"] == ODD
    assert ddp["ch03"]["accuracy"] == pytest.approx(single["ch03"]["accuracy"])
    assert ddp["ch03"]["loss"] == pytest.approx(single["ch03"]["loss"], rel=1e-5)
    assert ddp["ch08_rows"] == single["ch08_rows"] == list(range(ODD))
    assert ddp["ch08_hypotheses"] == single["ch08_hypotheses"]
    assert ddp["ch08_loss"] == pytest.approx(single["ch08_loss"], rel=1e-5)


# --- Ctrl+C 와 이어하기 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("script", [pytest.param(p, marks=[pytest.mark.slow] if p != CH08 else [])
                                    for p in DDP_SCRIPTS], ids=IDS)  # 08 이 더 싸서 늘 돌고, 03 은 slow
def test_ctrl_c_under_torchrun_then_resume_equals_uninterrupted(script, ddp_smoke, tmp_path, capsys):
    """모든 rank 가 epoch 2 의 첫 배치에서 SIGINT → 모두 130 으로 끝남, last.pt 는 epoch 1.
    → torchrun … --resume (2 프로세스) = 끊지 않은 실행. 같은 last.pt 를 torchrun 없이 한 프로세스로도
    이어 감 (숫자는 다르지만 끝까지 돌고 시험 세트를 한 번씩 셈)."""
    uninterrupted, reference = ddp_smoke(script)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    stopped = torchrun(script, *smoke_args(tmp_path), env={"TUTORIAL_SIGINT_AT": "epoch 2:0"})
    # 130 = Ctrl+C 로 끝남. 먼저 끝난 프로세스를 본 torchrun 이 나머지에 SIGTERM(-15)을 보내기도 함
    codes = worker_exit_codes(stopped)
    assert stopped.returncode != 0 and 130 in codes and codes <= {130, -15}, stopped.stderr[-3000:]
    assert not chapter_traceback(stopped, script), stopped.stderr[-3000:]
    assert stopped.stdout.count("중단: --resume") == 1  # rank 0 만 알림
    assert not (tmp_path / "metrics.json").exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1  # barrier: 저장이 끝난 뒤 멈춤

    one_process = tmp_path.parent / f"{tmp_path.name}_one_process"
    shutil.copytree(tmp_path, one_process)
    resumed = torchrun(script, *smoke_args(tmp_path, "--resume"))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "[이어하기]" in resumed.stdout
    assert record_of(tmp_path)["metrics"] == record_of(reference)["metrics"]

    # 2 프로세스의 체크포인트 → 1 프로세스 (torchrun 없이, 이 시험 프로세스 안에서 진입점 run 으로)
    module = load_chapter(script.name[:2])
    capsys.readouterr()
    module.run(module.main, module.Config, argv=smoke_args(one_process, "--resume"))
    assert "epoch 1 까지 끝남" in capsys.readouterr().out
    record = record_of(one_process)
    assert record["metrics"]["test_examples"] == SMOKE_TEST_SIZE[script.name[:2]]
    assert "processes" not in record["timing"]


@pytest.mark.slow
def test_terminal_ctrl_c_ends_every_process_without_tracebacks(tmp_path):
    """터미널의 Ctrl+C: torchrun 과 모든 프로세스가 같은 SIGINT 를 받고, torchrun 이 한 번 더 보냅니다.
    학습 도중(08장 기본 데이터 1 epoch 의 한가운데) 프로세스 그룹 전체에 SIGINT → 곧 모두 끝나고, 장의
    코드에서 난 traceback 이 없고, 프로세스들은 130 (또는 torchrun 이 먼저 끝낸 신호)으로 끝남."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(CH08),
               "--data", "offline", "--device", "cpu", "--epochs", "1", "--out-dir", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "TUTORIAL_SIGINT_AT"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg", PYTHONIOENCODING="utf-8")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines = []
    for line in process.stdout:  # 학습 직전에 rank 0 이 찍는 줄까지 읽음
        lines.append(line)
        if line.startswith("장치(device)"):
            break
    time.sleep(3)  # epoch 1 (2 프로세스로 약 10초)의 한가운데
    os.killpg(process.pid, signal.SIGINT)
    try:
        rest, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("Ctrl+C 뒤 60초 안에 끝나지 않았습니다 (멈춤)")
    output = "".join(lines) + rest
    assert process.returncode != 0 and not (tmp_path / "metrics.json").exists()
    assert f'File "{CH08}"' not in output, output[-3000:]
    assert output.count("중단: --resume") == 1, output[-3000:]


# --- 잘못된 입력 -----------------------------------------------------------------------------------------
def test_other_chapters_checkpoint_under_torchrun_is_one_line(ddp_smoke, tmp_path):
    """rank 0 이 읽은 last.pt 가 다른 장의 것 → 모든 rank 가 같은 UserError (run_on_main)
    → 한 줄, 종료 코드 2."""
    result, smoke_dir = ddp_smoke(CH08)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = torch.load(smoke_dir / "last.pt", map_location="cpu", weights_only=True)
    checkpoint["chapter"] = "00_other"
    torch.save(checkpoint, tmp_path / "last.pt")
    refused = torchrun(CH08, *smoke_args(tmp_path, "--resume"))
    # 두 rank 모두 오류 2 로 끝나지만, 먼저 끝난 rank 를 본 torchrun 이 나머지에 SIGTERM(-15)을 보낼 수 있음
    codes = worker_exit_codes(refused)
    assert refused.returncode != 0 and 2 in codes and codes <= {2, -15}, refused.stderr[-3000:]
    lines = error_lines(refused)
    assert len(lines) == 1 and "00_other" in lines[0], refused.stderr[-3000:]
    assert not chapter_traceback(refused, CH08)
    assert not (tmp_path / "metrics.json").exists()


def closed_port() -> int:
    with socket.socket() as probe:  # 운영체제가 고른 빈 포트: 닫은 뒤에는 아무도 듣지 않음
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("rank", ["1", "0"], ids=["worker-cannot-reach-master", "master-waits-for-worker"])
def test_unreachable_rendezvous_times_out_in_one_line(rank, tmp_path):
    """torchrun 이 주는 환경 변수를 손으로: 닿지 않는 MASTER_ADDR:MASTER_PORT(rank 1), 또는 오지 않는 다른
    프로세스(rank 0) → --dist-timeout 2 초 뒤 한 줄, 종료 코드 2 (멈추지 않음). 둘째 기계의 첫 프로세스처럼
    LOCAL_RANK 0 이라 그 기계에서 한 줄을 씀."""
    env = {"RANK": rank, "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(closed_port())}
    started = time.perf_counter()
    result = run_script(CH08, *smoke_args(tmp_path, "--dist-timeout", "2"), env=env, timeout=120)
    seconds = time.perf_counter() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("오류:") and env["MASTER_PORT"] in lines[0], lines
    assert seconds < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # 학습 전에 멈춤


@pytest.mark.parametrize("script", DDP_SCRIPTS, ids=IDS)
@pytest.mark.parametrize("case", ["more-processes-than-gpus", "batch-not-divisible"])
def test_bad_ddp_setup_is_one_line_before_any_work(script, case, tmp_path, monkeypatch, capsys):
    """torchrun --nproc_per_node=2 인데 GPU 가 하나 (CUDA 를 흉내 냄) / --batch-size 5 를 2 로 나눌 수 없음
    → 프로세스 그룹에 들어가기 전에 한 줄, 종료 코드 2."""
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    argv = smoke_args(tmp_path)
    if case == "more-processes-than-gpus":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        argv[argv.index("--device") + 1], must_mention = "cuda", "GPU 는 1개"
    else:
        argv, must_mention = argv + ["--batch-size", "5"], "--batch-size 5"
    module = load_chapter(script.name[:2])
    with pytest.raises(SystemExit) as stop:
        run(module.main, module.Config, argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and must_mention in lines[0], lines
    assert not dist.is_initialized() and not list(tmp_path.iterdir())
