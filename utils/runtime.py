"""실행 환경(runtime) 도우미: 설정 → 명령줄 플래그, 장치 선택, 시드 고정, 출력 폴더, 실행 기록.

모든 장(chapter)이 같은 방식으로 시작하고 끝나도록 하는 코드만 여기에 둡니다.
모델·손실·학습 단계처럼 장의 주제가 되는 코드는 각 장에 그대로 남아 있습니다.

사용 예::

    @dataclass
    class Config(RunConfig):
        chapter: ClassVar[str] = "01_pytorch_basics"   # 출력 폴더 이름, 체크포인트의 주인
        epochs: int = 10        # 전체 데이터를 몇 번 볼지
        lr: float = 1e-3        # Adam의 일반적인 시작값

    def main(config: Config) -> dict:
        device = pick_device(config.device)    # auto → cuda, mps, cpu 순서
        set_seed(config.seed)
        ...

    if __name__ == "__main__":
        run(main, Config)      # 플래그 → Config, 잘못된 입력은 한 줄 + 종료 코드 2

import 할 때는 아무 일도 하지 않습니다 (예외 훅·그림 백엔드·난수를 건드리지 않음).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import platform
import random
import re
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch


class UserError(Exception):
    """사용자가 고칠 수 있는 문제(잘못된 플래그, 없는 파일 등).

    `run` 이 이 예외를 traceback 없이 한 문장("오류: ...")으로 출력하고 종료 코드 2로 끝냅니다.
    """


@dataclass
class RunConfig:
    """모든 장에 공통인 실행 플래그. 각 장의 `Config` 가 이를 상속해 하이퍼파라미터를 더합니다."""

    chapter: ClassVar[str] = "chapter"  # 각 장이 덮어씀: 출력 폴더 outputs/<chapter>/, 체크포인트 주인 표시
    # --resume 때 체크포인트와 달라도 되는 플래그. 학습률 스케줄이 총 epoch 수에 묶인 장은
    # `resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free - {"epochs"}` 로 좁힙니다.
    resume_free: ClassVar[frozenset[str]] = frozenset({"epochs", "resume", "show", "out_dir",
                                                       "device", "predict"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: cuda → mps → cpu 순으로 고름
    seed: int = 42  # 같은 시드 + 같은 장치(CPU) → 같은 숫자
    data: Literal["auto", "real", "offline"] = "auto"  # auto: 실제 데이터가 없으면 오프라인 대체 데이터
    data_dir: str = "data"  # 실제 데이터를 찾고 내려받는 폴더
    out_dir: str = ""  # 비우면 outputs/<장 이름>/
    smoke: bool = False  # 오프라인 데이터, epoch 마다 배치 하나만 학습/평가, 최대 3 epoch (테스트용, 몇 초)
    resume: bool = False  # out_dir 의 last.pt 에서 이어서 학습
    show: bool = False  # 그림을 PNG로 저장하고 화면에도 띄움


# 음수·0이면 의미가 없는 공통 하이퍼파라미터: 이름 → (최솟값, 최솟값 포함 여부)
_POSITIVE_FIELDS = {"epochs": (1, True), "batch_size": (1, True), "lr": (0.0, False)}


def _field_comments(config_cls: type) -> dict[str, str]:
    """dataclass 소스에서 `name: type = default  # 설명` 의 설명을 읽어 --help 문구로 씁니다."""
    comments: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^=\n]+=[^#\n]*#\s*(.+)$", source, re.MULTILINE):
            comments[match.group(1)] = match.group(2).strip()
    return comments


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse 의 오류(사용법 여러 줄 + error:)를 "오류: ..." 한 줄로 바꾼 것. 종료 코드는 그대로 2."""

    def error(self, message: str):
        self.exit(2, f"오류: {message} (사용법: --help)\n" if reports_errors() else None)


def reports_errors() -> bool:
    """오류·중단 한 줄을 쓸 프로세스인지. torchrun 아래에서는 모든 프로세스가 같은 오류로 멈추므로
    기계마다 LOCAL_RANK 0 하나만 씁니다 (한 기계 = 한 줄). torchrun 이 아니면 늘 True."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def build_parser(config_cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """dataclass 의 각 필드를 플래그로 만듭니다: `batch_size` → `--batch-size`.

    - bool 필드 → `--flag / --no-flag`
    - `Literal[...]` 필드 → 허용 값(choices) 검사
    - 기본값과 필드 옆 주석이 `--help` 에 나옵니다.
    """
    # allow_abbrev=False: 옛 플래그(--hidden)가 새 플래그(--hidden-size)의 줄임으로 조용히 통하지 않게
    parser = OneLineArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False
    )
    hints = typing.get_type_hints(config_cls)
    comments = _field_comments(config_cls)
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        help_text = comments.get(field.name, " ").replace("%", "%%")  # argparse 는 % 를 서식으로 읽음
        kwargs: dict = {"default": field.default, "help": help_text}
        if hint is bool:
            if field.name.startswith("no_"):  # BooleanOptionalAction 은 --no-… 를 늘 False 로 읽음
                raise TypeError(f"{config_cls.__name__}.{field.name}: bool 필드 이름은 no_ 로 시작할 수 "
                                "없습니다 (예: no_skip 대신 skip: bool = True 와 --no-skip)")
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is Literal:
            choices = typing.get_args(hint)
            kwargs.update(type=type(choices[0]), choices=choices)
        elif hint in (int, float, str):
            kwargs["type"] = hint
        else:
            raise TypeError(f"{config_cls.__name__}.{field.name}: 지원하지 않는 타입 {hint}")
        parser.add_argument(flag, dest=field.name, **kwargs)
    return parser


def auto_epochs(config_cls: type) -> bool:
    """`epochs` 의 기본값이 0 인 장: 학습 길이를 epoch 수가 아니라 '본 이미지 수'(예산)로 정하고,
    --epochs N 을 주면 그것이 예산 대신 쓰입니다 (DESIGN.md "Your own data")."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    return "epochs" in fields and fields["epochs"].default == 0


def parse_config(config_cls: type, argv: list[str] | None = None):
    """명령줄을 읽어 `config_cls` 인스턴스를 돌려줍니다.

    잘못된 값(`--epochs -1`, `--lr nan`, 모르는 플래그, 허용되지 않는 장치, Config.__post_init__ 이
    거절한 값)은 argparse 가 한 줄로 알리고 종료 코드 2로 끝냅니다. 전역 상태는 바꾸지 않습니다.
    """
    main_doc = (getattr(sys.modules.get("__main__"), "__doc__", None) or "").strip()
    parser = build_parser(config_cls, description=main_doc.split("\n")[0] or None)
    args = parser.parse_args(argv)
    for name, (minimum, inclusive) in _POSITIVE_FIELDS.items():
        value = getattr(args, name, None)
        auto = name == "epochs" and auto_epochs(config_cls)
        minimum = 0 if auto else minimum  # 기본값이 0(예산에서 자동)인 장은 --epochs 0 도 받음
        if value is not None and (value < minimum if inclusive else value <= minimum):
            relation = "이상이어야" if inclusive else "보다 커야"
            hint = " (0 = 학습 예산에서 자동)" if auto else ""
            parser.error(f"--{name.replace('_', '-')} 는 {minimum} {relation} 합니다{hint} "
                         f"(받은 값: {value}).")
    for field in dataclasses.fields(config_cls):  # NaN 은 어떤 비교도 거짓이라 범위 검사를 빠져나감
        value = getattr(args, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{field.name.replace('_', '-')} 는 유한한 수여야 합니다 (받은 값: {value}).")
    try:
        config = config_cls(**vars(args))
    except ValueError as error:  # Config.__post_init__ 의 검사
        parser.error(str(error))
    return config


def in_notebook() -> bool:
    """Jupyter·VS Code 노트북(ipykernel) 안이면 True: 그곳의 sys.argv 는 커널의 인자라 읽으면 안 됨."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def prepare_out_dir(config: RunConfig) -> Path:
    """출력 폴더를 만들고 실제로 쓸 수 있는지 작은 파일로 확인합니다 (학습을 시작하기 전에).

    파일이 그 자리에 있거나, 읽기 전용이거나, 만들 수 없는 곳(/proc 아래 등)이면 UserError.
    """
    out_dir = Path(config.out_dir) if config.out_dir else Path("outputs") / config.chapter
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir} 는 폴더가 아니라 파일입니다. 다른 폴더를 지정하세요.")
    # 프로세스마다 다른 이름: torchrun 의 프로세스들이 한 폴더를 동시에 확인해도 서로의 파일을 지우지 않음
    probe = out_dir / f".write_test.{os.getpid()}.tmp"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise UserError(f"--out-dir {out_dir} 에 쓸 수 없습니다 ({error.strerror or error}). "
                        "쓰기 권한이 있는 폴더를 지정하세요.") from None
    return out_dir


def check_resume_file(config: RunConfig) -> None:
    """`--resume` 의 last.pt 를 데이터·모델을 준비하기 전에 읽어 봅니다: 빈 파일, 잘린 파일, 체크포인트가
    아닌 파일, 다른 장의 체크포인트면 몇 분의 준비를 기다리게 하지 않고 그 자리에서 한 줄 오류.

    지금 플래그와 설정이 맞는지는 장이 모델을 만든 뒤 `training.resume_or_start` 가 봅니다 ('자동'
    플래그의 값이 데이터를 읽은 뒤에 정해지므로). last.pt 가 없으면 아무 일 없음 (장이 '처음부터' 라고 알림).
    """
    path = Path(config.out_dir) / "last.pt"
    if config.resume and path.exists():
        from utils.training import load_checkpoint  # 여기서 읽음: utils.training 이 이 모듈을 import 함

        load_checkpoint(path, config, purpose="resume")


def run(main, config_cls: type, argv: list[str] | None = None):
    """스크립트의 진입점: 플래그 → Config → 출력 폴더 확인 → (--resume 이면 last.pt 확인) → `main(config)`.

    - 노트북(Jupyter, VS Code)에서는 커널의 인자를 읽지 않고 `Config` 의 기본값을 씁니다.
    - 사용자가 고칠 수 있는 문제(UserError, 잘못된 플래그)는 "오류: ..." 한 줄과 종료 코드 2
      (torchrun 아래에서는 기계마다 한 프로세스만 그 줄을 씀: `reports_errors`).
    - 어디서든 Ctrl+C 는 한 줄과 종료 코드 130 (128 + SIGINT, 셸의 관례).
    - 그 밖의 예외는 버그이므로 평소처럼 traceback 을 보여 줍니다.
    - torchrun(DDP) 의 프로세스 그룹은 어떻게 끝나든 마지막에 닫습니다 (utils/distributed.end).
    """
    if argv is None:
        argv = [] if in_notebook() else sys.argv[1:]
    try:
        config = parse_config(config_cls, argv)
        config.out_dir = str(prepare_out_dir(config))
        check_resume_file(config)
        return main(config)
    except UserError as error:
        if reports_errors():
            print(f"오류: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except BrokenPipeError:  # `python 0X.py | head` 처럼 읽는 쪽이 먼저 닫힘: 조용히 끝냄
        sys.stderr.close()
        raise SystemExit(0) from None
    except KeyboardInterrupt:
        if reports_errors():
            print("\n중단되었습니다 (Ctrl+C). 학습 중이었다면 --resume 으로 이어서 할 수 있습니다.",
                  file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        from utils.distributed import end  # 여기서 읽음: utils.distributed 가 이 모듈을 import 함

        end()  # torchrun(DDP) 의 프로세스 그룹을 닫음: 정상 종료·오류·Ctrl+C 모두. 그룹이 없으면 아무 일 없음


def pick_device(name: str = "auto") -> torch.device:
    """'auto' 는 cuda → mps → cpu 순으로 고릅니다. 요청한 장치가 없으면 UserError."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda 를 요청했지만 CUDA GPU를 찾을 수 없습니다. "
                        "--device cpu 또는 --device auto 로 실행하세요.")
    elif name == "mps" and not has_mps:
        raise UserError("--device mps 를 요청했지만 Apple MPS 를 쓸 수 없습니다. "
                        "--device cpu 또는 --device auto 로 실행하세요.")
    elif name not in ("cpu", "cuda", "mps"):
        raise UserError(f"알 수 없는 장치 '{name}': auto, cpu, cuda, mps 중 하나를 쓰세요.")
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Python, NumPy, PyTorch(CPU와 모든 GPU)의 난수 생성기를 한 번에 고정합니다.

    DataLoader 의 섞기처럼 따로 저장해야 하는 난수는 `torch.Generator().manual_seed(seed)` 로 만들어
    체크포인트의 generators 로 넘깁니다 (utils/training.py).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CUDA 가 있으면 모든 GPU 도 함께 고정됩니다


def library_versions() -> dict[str, str]:
    """실행 기록에 남길 라이브러리 버전 (torchvision 은 설치 정보에서 읽음: import 하면 몇 초 걸림)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torchvision_version = version("torchvision")
    except PackageNotFoundError:
        torchvision_version = "not installed"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision_version,
        "numpy": np.__version__,
    }


def _to_jsonable(value):
    """텐서·NumPy 값·Path 를 JSON 으로 쓸 수 있는 파이썬 값으로."""
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_run_record(out_dir: Path, *, script: str, config: RunConfig, data: str,
                     device: torch.device, seconds: float, parameters: int,
                     metrics: dict, headline: str, timing: dict | None = None) -> Path:
    """`metrics.json`: 무엇을, 어떤 데이터·장치로, 얼마나 걸려, 어떤 결과를 냈는지.

    `metrics` 에는 숫자(또는 숫자 표)만 넣습니다. 같은 시드로 CPU에서 두 번 돌리면
    `metrics` 는 같고 `seconds` 만 다릅니다. `headline` 은 이 장의 대표 지표 이름
    (`metrics` 의 키)으로, benchmarks/run_all.py 가 결과표에 씁니다. 실행마다 달라지는 측정값
    (예: 초당 이미지 수)은 `metrics` 가 아니라 `timing` 에 넣습니다.
    """
    if headline not in metrics:
        raise KeyError(f"headline '{headline}' 이 metrics 에 없습니다: {sorted(metrics)}")
    record = {
        "script": Path(script).name,
        "data": data,
        "device": str(device),
        "seconds": round(seconds, 2),
        "timing": _to_jsonable(timing or {}),
        "parameters": parameters,
        "seed": config.seed,
        "versions": library_versions(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "headline": {"name": headline, "value": _to_jsonable(metrics[headline])},
        "metrics": _to_jsonable(metrics),
        "config": dataclasses.asdict(config),
    }
    path = Path(out_dir) / "metrics.json"
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_path, path)
    return path
