"""학습의 '주제가 아닌' 부분: 진행 막대, 기록(history), 체크포인트 저장/이어하기, 조기 종료, AMP.

학습 단계 자체(zero_grad → forward → loss → backward → step)는 각 장에 그대로 있습니다.
여기 있는 것은 어느 장에서나 같은 뒷정리 코드뿐입니다.

체크포인트(checkpoint) 한 파일에 담는 것:
    model, optimizer, scheduler, scaler 의 state_dict, 끝난 epoch, 최고 지표(best metric),
    각 장이 더 넣고 싶은 값(extra), 그리고 Python·NumPy·PyTorch 의 난수 상태(RNG state).
난수 상태까지 저장하므로 CPU 에서 `--resume` 으로 이어 한 결과는 끊지 않고 한 번에 학습한
결과와 같습니다 (tests/test_utils.py 가 확인합니다).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from utils.runtime import UserError


# ---------------------------------------------------------------------------
# 진행 막대와 기록
# ---------------------------------------------------------------------------
def progress(iterable, desc: str, total: int | None = None):
    """epoch 하나의 진행 막대. 끝나면 지워지고(leave=False) 요약 한 줄만 남습니다."""
    # disable=None: 터미널이 아니면(로그 파일, 테스트) 막대를 그리지 않습니다.
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=None)


class History:
    """epoch 마다 지표 한 줄: 화면에 요약을 출력하고 `history.csv` 에 덧붙입니다.

    `History(path, resume=True)` 는 기존 파일을 읽어 이어 씁니다 (이어하기용).
    """

    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        self.rows: list[dict] = []
        if resume and self.path.exists():
            with self.path.open(newline="", encoding="utf-8") as f:
                self.rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def log(self, **metrics) -> None:
        """예: history.log(epoch=3, train_loss=0.41, val_acc=0.93)"""
        self.rows.append(metrics)
        print("  ".join(_format_metric(k, v) for k, v in metrics.items()))
        self.save()

    def truncate(self, last_epoch: int) -> None:
        """이어하기: 체크포인트보다 뒤의 줄(중단 전에 기록만 되고 저장되지 않은 epoch)을 버립니다."""
        self.rows = [row for row in self.rows if row.get("epoch", 0) <= last_epoch]
        self.save()

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if name in row]

    def save(self) -> None:
        if not self.rows:
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
# 체크포인트
# ---------------------------------------------------------------------------
def rng_states() -> dict:
    """모든 난수 생성기의 현재 상태 (이어하기를 끊김 없이 만들기 위해)."""
    # NumPy 상태는 배열을 품은 튜플이라 weights_only 로 읽을 수 있게 텐서·기본형으로 풉니다.
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(_as_tuples(states["python"]))
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value):
    """저장·읽기를 거치며 리스트가 된 튜플을 되돌립니다 (random.setstate 는 튜플만 받음)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, *, model: torch.nn.Module, epoch: int, best_metric: float,
                    optimizer=None, scheduler=None, scaler=None, extra: dict | None = None) -> None:
    """체크포인트를 임시 파일에 쓴 뒤 이름을 바꿉니다(atomic write).

    `os.replace` 는 같은 폴더 안에서 원자적이므로, 쓰는 도중에 중단되어도 `path` 에는
    이전의 온전한 파일이나 새 온전한 파일 중 하나만 남습니다.
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "best_metric": best_metric,
        "extra": extra or {},
        "rng": rng_states(),
    }
    path = Path(path)
    tmp_path = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)  # 실패했을 때 반쯤 쓴 임시 파일을 남기지 않음


def load_checkpoint(path: Path, *, model: torch.nn.Module, optimizer=None, scheduler=None,
                    scaler=None, device: torch.device | str = "cpu",
                    restore_rng: bool = True) -> dict:
    """`save_checkpoint` 가 쓴 파일을 읽어 각 객체에 되돌립니다.

    `weights_only=True`: 텐서와 기본 자료형만 읽습니다. 믿을 수 없는 파일에 숨은 파이썬
    코드가 실행되는 피클(pickle) 공격을 막습니다.
    반환값: {"epoch", "best_metric", "extra"}.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"체크포인트 {path} 가 없습니다. 먼저 --resume 없이 학습하세요.")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"체크포인트 {path} 를 읽을 수 없습니다 ({str(error).splitlines()[0]}). "
                        "다른 설정으로 학습한 파일이면 지우고 다시 학습하세요.") from error
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state.get(key) is not None:
            obj.load_state_dict(state[key])
    if restore_rng:
        set_rng_states(state["rng"])
    return {"epoch": state["epoch"], "best_metric": state["best_metric"], "extra": state["extra"]}


def checkpoint_extra(path: Path) -> dict:
    """체크포인트의 extra(모델 설정·클래스 이름 등)만 읽습니다: 모델을 만들기 전에 모양을 알아야 할 때.

    load_checkpoint 와 같이 weights_only=True 로 읽고, 없거나 깨진 파일은 UserError 입니다.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"체크포인트 {path} 가 없습니다. 먼저 --predict 없이 학습하세요 (같은 --out-dir).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["extra"]
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"체크포인트 {path} 를 읽을 수 없습니다 ({str(error).splitlines()[0]}). "
                        "지우고 다시 학습하세요.") from error


@contextlib.contextmanager
def save_on_interrupt(save_fn, out_dir: Path):
    """Ctrl+C(KeyboardInterrupt) 가 오면 `save_fn()` 으로 last.pt 를 남기고 조용히 끝냅니다.

    사용 예::

        with save_on_interrupt(lambda: save_checkpoint(...), out_dir):
            for epoch in ...:
                ...
    `save_fn` 은 중단 시점에 호출되므로 그때의 epoch 값을 씁니다.
    """
    try:
        yield
    except KeyboardInterrupt:
        save_fn()
        print(f"\n중단됨: {Path(out_dir) / 'last.pt'} 저장. --resume 으로 이어서 학습할 수 있습니다.")
        raise SystemExit(130) from None  # 130 = 128 + SIGINT, 셸의 관례


class EarlyStopping:
    """검증 지표가 `patience` epoch 동안 나아지지 않으면 멈추라고 알려줍니다.

    mode="max" 는 정확도처럼 클수록 좋은 지표, "min" 은 손실처럼 작을수록 좋은 지표.
    `state_dict()` 를 체크포인트의 extra 에 넣으면 이어하기 뒤에도 같은 판단을 합니다.
    """

    def __init__(self, patience: int, mode: str = "max", min_delta: float = 0.0):
        if mode not in ("max", "min"):
            raise ValueError("mode 는 'max' 또는 'min'")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.bad_epochs = 0

    def step(self, metric: float) -> bool:
        """이번 지표가 최고 기록이면 True."""
        improved = (metric > self.best + self.min_delta if self.mode == "max"
                    else metric < self.best - self.min_delta)
        if improved:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


def check_finite(loss: torch.Tensor, epoch: int, step: int) -> None:
    """손실이 NaN/inf 가 되면 어느 epoch 의 몇 번째 배치인지 말하고 멈춥니다.

    GPU 에서는 이 검사가 배치마다 한 번 동기화(sync)를 일으키지만, 망가진 학습을 몇 시간
    더 돌리는 것보다 훨씬 쌉니다.
    """
    if not torch.isfinite(loss):
        raise UserError(f"손실이 {loss.item()} 이 되었습니다 (epoch {epoch}, 배치 {step}). "
                        "학습률(--lr)을 낮추거나 입력 정규화를 확인하세요.")


def autocast(device: torch.device, enabled: bool):
    """혼합 정밀도(AMP) 문맥: CUDA 에서는 float16, CPU 에서는 bfloat16, 꺼져 있으면 아무 일도 안 함.

    `torch.amp.autocast` 만 씁니다 (옛 `torch.cuda.amp` 는 폐기 예정).
    float16 에는 `torch.amp.GradScaler("cuda")` 가 함께 필요합니다 (각 장에서 보여줌).
    """
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.amp.autocast(device_type=device.type, dtype=dtype,
                              enabled=enabled and device.type in ("cuda", "cpu"))
