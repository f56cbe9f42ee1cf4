"""학습의 '주제가 아닌' 부분: 진행 막대, 기록(history), 체크포인트 하나의 형식과 이어하기, 조기 종료.

학습 단계 자체(zero_grad → forward → loss → backward → step)와 학습 블록(run block)은 각 장에 그대로
보입니다. 여기 있는 것은 어느 장에서나 같은 뒷정리 코드뿐입니다. 장에서는 모듈째 가져와
(`from utils import training`) `training.save_checkpoint(...)` 처럼 불러, 부르는 자리에서 이 파일이
출처임이 보이게 합니다. 한 장의 학습 블록을 베껴 갈 때는 이 파일 하나를 함께 가져가면 됩니다
(utils.runtime 의 UserError 와 utils.distributed 의 두 함수만 씀).

체크포인트(checkpoint)는 평범한 dict 하나 (`make_checkpoint`): 모델을 다시 만드는 인자(model_args),
model·optimizer·scheduler·scaler 의 state_dict, 끝난 epoch, 최고 지표(best), 설정(config), 모든 난수
상태(rng: 전역 + DataLoader 의 generator), 예측에 필요한 것(extra), epoch 별 기록(history).
새 학습은 첫 걸음 전에 last.pt(epoch 0)를 쓰고 epoch 경계에서만 다시 쓰므로, CPU 에서 어디서 끊든
`--resume` 결과는 끊지 않은 학습과 같습니다 (tests/test_contract.py 가 모든 장에서 확인합니다).

여러 프로세스(torchrun + DDP, 03·08장)에서는 파일(history.csv, 처음의 last.pt)을 rank 0 만 쓰고, 체크포인트는
rank 0 이 읽어 모든 프로세스에 나눠 줍니다 (utils/distributed.py). 프로세스 하나면 달라지는 것이 없습니다.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from utils.distributed import is_main, run_on_main
from utils.runtime import UserError


# ---------------------------------------------------------------------------
# 진행 막대와 기록
# ---------------------------------------------------------------------------
def progress(iterable, desc: str, total: int | None = None):
    """epoch 하나의 진행 막대. 끝나면 지워지고(leave=False) 요약 한 줄만 남습니다.

    시험용: 환경 변수 `TUTORIAL_SIGINT_AT="epoch 2:0"` 이면 desc 가 "epoch 2" 인 막대의 0번째
    걸음에서 자기 자신에게 진짜 SIGINT(Ctrl+C)를 보냅니다. 중단·이어하기 시험이 시간에 기대지 않고
    정해진 곳에서 끊기게 하려는 것이며, 변수가 없으면 아무 일도 하지 않습니다.
    """
    # disable=None: 터미널이 아니면(로그 파일, 테스트) 막대를 그리지 않습니다. DDP 에서는 rank 0 만 그립니다.
    bar = tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
               disable=None if is_main() else True)
    target = os.environ.get("TUTORIAL_SIGINT_AT", "")
    if not target or target.rpartition(":")[0] != desc:
        return bar
    return _interrupt_at(bar, int(target.rpartition(":")[2]))


def _interrupt_at(iterable, step: int):
    for index, item in enumerate(iterable):
        if index == step:
            # 백그라운드 셸(nohup … &)에서 시작된 프로세스는 SIGINT 를 '무시'로 물려받으므로 되돌려 둠
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # 신호가 도착해 KeyboardInterrupt 가 날 때까지 (보통 즉시)
        yield item


class History:
    """epoch 마다 지표 한 줄: 화면에 요약을 출력하고 `history.csv` 에 씁니다.

    이어하기 때는 `resume_or_start` 가 체크포인트에 든 기록으로 `rows` 를 되살립니다
    (그래서 history.csv 가 지워지거나 중단 뒤 한 줄 더 쓰였어도 기록은 체크포인트와 같습니다).
    """

    def __init__(self, path: Path, resume: bool = False):
        """resume=True: 이미 있는 CSV 를 읽어 이어 씁니다 (체크포인트에 넣지 않는 배치 단위 기록용;
        이어한 뒤 `truncate(마지막으로 끝난 epoch)` 로 중단된 epoch 의 줄을 버리세요)."""
        self.path = Path(path)
        self.rows: list[dict] = []
        if resume and self.path.exists():
            with self.path.open(newline="", encoding="utf-8") as f:
                self.rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def log(self, **metrics) -> None:
        """예: history.log(epoch=3, train_loss=0.41, val_accuracy=0.93)"""
        self.rows.append(metrics)
        print("  ".join(_format_metric(k, v) for k, v in metrics.items()))
        self.save()

    def truncate(self, last_epoch: int) -> None:
        """이어하기: `last_epoch` 보다 뒤의 줄(저장되지 않은 epoch 의 기록)을 버립니다."""
        self.rows = [row for row in self.rows if row.get("epoch", 0) <= last_epoch]
        self.save()

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if name in row]

    def epochs_since_best(self, key: str, mode: str = "max") -> int:
        """조기 종료(early stopping)용: `key` 가 처음 최고값을 찍은 뒤 지난 epoch 수.

        같은 값은 나아진 것으로 치지 않습니다 (run 블록의 `>` 와 같음). 기록(history)은 체크포인트에
        들어 있으므로 이어하기 뒤에도 같은 판단을 합니다.
        """
        values = self.column(key)
        if not values:
            return 0
        best_value = max(values) if mode == "max" else min(values)
        return len(values) - 1 - values.index(best_value)

    def save(self) -> None:
        if not self.rows or not is_main():  # DDP: 모든 프로세스가 같은 기록을 갖되 파일은 rank 0 만 씀
            return
        fieldnames = list(dict.fromkeys(k for row in self.rows for k in row))
        tmp_path = self.path.with_suffix(".csv.tmp")
        with tmp_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp_path, self.path)


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _format_metric(name: str, value) -> str:
    if isinstance(value, float):
        return f"{name}={value:.4f}"
    return f"{name}={value}"


# ---------------------------------------------------------------------------
# 체크포인트: 이어하기(resume), 최고 모델(best), 예측(--predict)이 모두 같은 형식 하나를 씁니다
# ---------------------------------------------------------------------------
CHECKPOINT_KEYS = ("chapter", "model_args", "model", "optimizer", "scheduler", "scaler", "epoch", "best",
                   "config", "rng", "extra", "history")
# 이어하기 때 달라도 되는 설정은 각 장 Config 의 `resume_free` (utils/runtime.py 의 RunConfig 참고).


def rng_states(generators=()) -> dict:
    """모든 난수 생성기의 현재 상태: 전역 Python·NumPy·PyTorch(·CUDA) + DataLoader 등의 torch.Generator.

    다음 epoch 의 섞는 순서·드롭아웃·증강을 정하는 것이 모두 여기 있어야 이어하기가 끊김 없이 같아집니다.
    """
    # NumPy 상태는 배열을 품은 튜플이라 weights_only 로 읽을 수 있게 텐서·기본형으로 풉니다.
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "generators": [generator.get_state() for generator in generators],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, generators=()) -> None:
    """`rng_states` 가 저장한 상태로 되돌립니다 (generators 는 저장할 때와 같은 순서)."""
    random.setstate(_as_tuples(states["python"]))
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for generator, state in zip(generators, states.get("generators", [])):
        generator.set_state(state)


def _as_tuples(value):
    """저장·읽기를 거치며 리스트가 된 튜플을 되돌립니다 (random.setstate 는 튜플만 받음)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def make_checkpoint(config, model_args: dict, state: dict, epoch: int, best: float, *,
                    generators=(), history=None, extra: dict | None = None) -> dict:
    """체크포인트 = 평범한 dict 하나 (nanoGPT 의 방식).

    config     : 실행 설정 (Config dataclass)
    model_args : `build_model(**model_args)` 로 모델을 다시 만들 수 있는 인자 (예측이 이것만으로 모델을 만듦)
    state      : {"model": model, "optimizer": ..., "scheduler": ..., "scaler": ...} — state_dict() 가 있는 것
    epoch      : 끝난 epoch (0 = 첫 걸음 전)
    best       : 지금까지 가장 좋은 검증 지표
    generators : DataLoader 등에 준 torch.Generator 들 (이어하기 때 같은 순서로 되돌림)
    history    : History: epoch 별 기록 (조기 종료 판단과 학습 곡선이 이어하기 뒤에도 같도록)
    extra      : 예측에 필요한 가중치 밖의 것 (어휘, 문자 집합, 정규화 값, 클래스 이름, 데이터 이름)
    """
    return {
        "chapter": config.chapter,
        "model_args": dict(model_args),
        **{key: (state[key].state_dict() if state.get(key) is not None else None)
           for key in ("model", "optimizer", "scheduler", "scaler")},
        "epoch": epoch,
        "best": best,
        "config": dataclasses.asdict(config),
        "rng": rng_states(generators),
        "extra": dict(extra or {}),
        "history": [dict(row) for row in history.rows] if history is not None else [],
    }


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """체크포인트를 임시 파일에 쓴 뒤 이름을 바꿉니다(atomic write).

    `os.replace` 는 같은 폴더 안에서 원자적이므로, 쓰는 도중에 중단되어도 `path` 에는
    이전의 온전한 파일이나 새 온전한 파일 중 하나만 남습니다.
    DDP(torchrun): rank 0 만 쓰고 다른 프로세스에서는 아무 일도 하지 않습니다 (모두 같은 모델이므로).
    """
    if not is_main():
        return
    path = Path(path)
    tmp_path = path.with_name(path.name + ".tmp")
    try:
        torch.save(checkpoint, tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)  # 실패했을 때 반쯤 쓴 임시 파일을 남기지 않음


def load_checkpoint(path: Path, config, *, purpose: str = "resume") -> dict:
    """체크포인트를 읽어 dict 로 돌려줍니다. 파일이 잘못될 수 있는 모든 경우는 한 줄의 UserError.

    `weights_only=True`: 텐서와 기본 자료형만 읽습니다. 믿을 수 없는 파일에 숨은 파이썬
    코드가 실행되는 피클(pickle) 공격을 막습니다.
    purpose: "resume"(--resume), "predict"(--predict), "test"(시험 평가) — 오류 문장에 씁니다.
    """
    path = Path(path)
    advice = {"resume": "--resume 없이 처음부터 학습하세요",
              "predict": "먼저 --predict 없이 학습하세요 (같은 --out-dir)",
              "test": "지우고 다시 학습하세요"}[purpose]
    if not path.exists():
        raise UserError(f"체크포인트 {path} 가 없습니다. {advice}.")
    if path.is_dir():
        raise UserError(f"체크포인트 {path} 는 파일이 아니라 폴더입니다.")
    if path.stat().st_size == 0:
        raise UserError(f"체크포인트 {path} 가 빈 파일입니다 (저장 중에 끊겼을 수 있음). {advice}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # 잘린 zip, 텍스트 파일, 피클이 아닌 것, 허용되지 않은 객체 …
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise UserError(f"체크포인트 {path} 를 읽을 수 없습니다: 잘렸거나 체크포인트 파일이 아닙니다 "
                        f"({first_line}). {advice}.") from None
    if not isinstance(checkpoint, dict) or not set(CHECKPOINT_KEYS) <= set(checkpoint):
        raise UserError(f"{path} 는 이 시리즈의 체크포인트가 아닙니다 (필요한 키가 없음). {advice}.")
    if checkpoint["chapter"] != config.chapter:
        raise UserError(f"{path} 는 {checkpoint['chapter']} 장의 체크포인트입니다 "
                        f"(지금은 {config.chapter}). --out-dir 을 확인하세요.")
    return checkpoint


def setting_differences(saved: dict, current: dict, free=()) -> list[str]:
    """두 설정 dict 의 다른 항목을 "이름: 저장값 → 지금값" 으로 (free 에 든 이름은 건너뜀)."""
    names = sorted((set(saved) | set(current)) - set(free))
    return [f"{name}: {saved.get(name)!r} → {current.get(name)!r}"
            for name in names if saved.get(name) != current.get(name)]


def resume_or_start(config, checkpoint_fn, state: dict, *, generators=(), history=None,
                    best: float, free=None) -> tuple[int, float]:
    """이어하기 또는 새 시작. (시작할 epoch, 지금까지의 best) 를 돌려줍니다.

    - 새 시작: 첫 걸음 전에 last.pt(epoch 0)를 씁니다. 그래서 epoch 1 도중에 Ctrl+C 를 눌러도
      이어 할 파일이 있고, 이어 한 결과는 끊지 않은 학습과 같습니다.
    - `--resume`: last.pt 의 모델·최적화기·스케줄러·난수 상태·기록을 되살리고 다음 epoch 부터.
      last.pt 가 아직 없으면(첫 저장 전에 멈춤) 처음부터 시작한다고 한 줄로 알립니다.
      모델 인자나 데이터 설정이 지금 플래그와 다르면 다른 점을 나열하며 거절합니다 (--epochs 는 허용).
    checkpoint_fn(epoch, best) 는 각 장이 만드는 `make_checkpoint(...)` 호출입니다.
    free: 달라도 되는 플래그 이름들 (기본: 그 장 Config 의 `resume_free`).
    """
    free = config.resume_free if free is None else free
    path = Path(config.out_dir) / "last.pt"
    # DDP: rank 0 이 읽고 확인해 모든 프로세스에 나눠 줌 (두 번째 기계에는 last.pt 가 없을 수 있음)
    saved = run_on_main(lambda: _checked_resume_checkpoint(path, config, checkpoint_fn, best, free))
    if saved is not None:
        for key, obj in state.items():
            if obj is not None and saved.get(key) is not None:
                obj.load_state_dict(saved[key])
        set_rng_states(saved["rng"], generators)
        if history is not None:
            history.rows = [dict(row) for row in saved["history"]]
            history.save()
        print(f"[이어하기] {path}: epoch {saved['epoch']} 까지 끝남 → epoch {saved['epoch'] + 1} 부터")
        return saved["epoch"] + 1, saved["best"]
    if config.resume:
        print(f"[이어하기] {path} 가 아직 없어(첫 저장 전에 멈춤) 처음부터 시작합니다.")
    save_checkpoint(path, checkpoint_fn(0, best))  # DDP: rank 0 만 씀
    return 1, best


def _checked_resume_checkpoint(path: Path, config, checkpoint_fn, best: float, free) -> dict | None:
    """--resume 이고 last.pt 가 있으면 읽어서 지금 설정과 맞는지 확인한 dict, 아니면 None."""
    if not (config.resume and path.exists()):
        return None
    saved = load_checkpoint(path, config, purpose="resume")
    current = checkpoint_fn(0, best)
    differences = setting_differences(saved["config"], current["config"], free)
    differences += [f"model_args.{d}" for d in setting_differences(saved["model_args"],
                                                                  current["model_args"], ())]
    if saved["extra"].get("data") != current["extra"].get("data"):
        differences.append(f"data: {saved['extra'].get('data')!r} → {current['extra'].get('data')!r}")
    if differences:
        raise UserError(f"{path} 는 다른 설정으로 학습되었습니다 ({'; '.join(differences)}). "
                        "같은 설정으로 --resume 하거나 다른 --out-dir 로 새로 학습하세요.")
    return saved


def load_trained_model(path: Path, build_model, config, device, purpose: str = "predict"):
    """best.pt(또는 last.pt)에서 모델을 다시 만듭니다: `build_model(**model_args)` + 가중치 + eval().

    --predict 와 시험 평가가 같은 함수를 씁니다. 원래 학습 플래그를 다시 줄 필요가 없습니다.
    반환값: (model, checkpoint dict)
    """
    # DDP: rank 0 이 읽어 모든 프로세스에 나눠 줌 (resume_or_start 와 같은 까닭)
    checkpoint = run_on_main(lambda: load_checkpoint(path, config, purpose=purpose))
    model = build_model(**checkpoint["model_args"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise UserError(f"{path} 의 가중치가 모델과 맞지 않습니다 "
                        f"({str(error).splitlines()[0][:160]}). 지우고 다시 학습하세요.") from None
    return model.to(device).eval(), checkpoint


def check_finite(loss: torch.Tensor, epoch: int, step: int) -> None:
    """손실이 NaN/inf 가 되면 어느 epoch 의 몇 번째 배치인지 말하고 멈춥니다.

    GPU 에서는 이 검사가 배치마다 한 번 동기화(sync)를 일으키지만, 망가진 학습을 몇 시간
    더 돌리는 것보다 훨씬 쌉니다.
    """
    if not torch.isfinite(loss):
        raise UserError(f"손실이 {loss.item()} 이 되었습니다 (epoch {epoch}, 배치 {step}). "
                        "학습률(--lr)을 낮추거나 입력 정규화를 확인하세요.")


# ---------------------------------------------------------------------------
# 학습 예산(budget): epoch 수가 아니라 '본 이미지 수'로 정합니다 (DESIGN.md "Your own data")
# ---------------------------------------------------------------------------
def epochs_for_budget(train_count: int, budget_images: int, *, max_epochs: int, min_epochs: int = 1) -> int:
    """학습 세트 `train_count` 장으로 약 `budget_images` 장을 보려면 몇 바퀴(epoch) 돌아야 하는지.

    절차적 기본 데이터 16,000 장 × 10 epoch 으로 맞춘 학습 길이를 160 장짜리 폴더에 그대로 쓰면
    걸음(step) 수가 100 분의 1 이 됩니다. 그래서 '본 이미지 수'를 맞춥니다: ceil(예산 / 세트 크기),
    [min_epochs, max_epochs] 안으로 자름 (max_epochs 는 시간 상한, 조기 종료가 더 일찍 끝낼 수 있음).
    """
    if train_count < 1:
        raise UserError("학습 세트가 비어 있습니다: 데이터 폴더를 확인하세요.")
    return max(min_epochs, min(max_epochs, -(-budget_images // train_count)))


def describe_budget(train_count: int, epochs: int, seconds_per_image: float | None = None,
                    unit: str = "장", early_stop: bool = True) -> str:
    """학습 전에 보여 줄 한 줄: '162장 × 74바퀴 ≈ 11,988장, 이 기계에서 약 6분'."""
    total = train_count * epochs
    line = f"학습 예산: {train_count:,}{unit} × {epochs}바퀴(epoch) ≈ {total:,}{unit}"
    if seconds_per_image is not None:
        minutes = total * seconds_per_image / 60
        estimate = f"{minutes:.0f}분" if minutes >= 1 else f"{minutes * 60:.0f}초"
        line += f", 이 기계에서 약 {estimate}"
    return line + (" (--epochs 로 바꿀 수 있고, 검증 지표가 멈추면 조기 종료)" if early_stop
                   else " (--epochs 로 바꿀 수 있음)")


def early_stop(history: History, key: str, patience: int, mode: str = "max") -> bool:
    """조기 종료(early stopping): `key` 가 `patience` epoch 동안 최고 기록을 넘지 못했으면 한 줄 알리고 True.

    patience 0 이면 끄기. 기록(history)은 체크포인트에 있으므로 이어하기 뒤에도 같은 판단을 합니다.
    """
    if patience < 1 or history.epochs_since_best(key, mode) < patience:
        return False
    print(f"  조기 종료: {patience} epoch 동안 {key} 가 최고 기록을 넘지 못해 멈춥니다 (--patience).")
    return True


def seconds_per_image(model: torch.nn.Module, loss_fn, batch, repeats: int = 2) -> float:
    """학습 한 걸음(forward + backward)이 이미지 한 장에 걸리는 시간(초)을 잽니다: 예산 안내용.

    모델의 복사본으로 재므로 가중치·BatchNorm 통계·옵티마이저는 그대로이고, 난수 상태도
    `fork_rng` 로 되돌려 같은 seed 의 학습 숫자가 바뀌지 않습니다. batch: (inputs, targets) 의
    한 배치, loss_fn(outputs, targets) → 스칼라. 첫 번째 걸음은 준비 시간(warm-up)이라 버립니다.
    """
    import copy

    inputs, targets = batch
    probe = copy.deepcopy(model).train()
    devices = [inputs.device.index] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        timings = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            loss_fn(probe(inputs), targets).backward()
            if inputs.device.type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
    return min(timings[1:]) / len(inputs)


def warn_if_trivial(name: str, value: float, baseline: float, margin: float, hint: str,
                    higher_is_better: bool = True) -> bool:
    """끝난 학습의 대표 지표가 '아무것도 배우지 않은' 기준선과 잡음 안에서 같으면 경고 한 줄 (True).

    예: 정확도가 찍기(1/K) + 3σ 를 못 넘음, IoU 가 모두 배경으로 칠한 것과 같음, 검출이 하나도 없음.
    종료 코드는 0 그대로 두되(결과 파일은 다 씀), 표가 끝난 학습처럼 보여도 쓸 수 없는 모델임을
    말하고 가장 그럴듯한 원인과 바꿀 플래그(hint)를 알려 줍니다. margin: 잡음으로 볼 차이.
    """
    beaten = value > baseline + margin if higher_is_better else value < baseline - margin
    if beaten:
        return False
    print(f"경고: {name} {value:.4g} 가 학습 없이 얻는 기준선 {baseline:.4g} 와 잡음(±{margin:.2g}) 안에서 "
          f"같습니다 — 쓸 수 있는 모델이 아닙니다. {hint}")
    return True

