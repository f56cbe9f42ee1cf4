"""테스트 공용 도구: 장(chapter) 스크립트를 모듈로 불러오기, 하위 프로세스로 실행하기."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # 프로젝트 옆에 있을 때만 쓰는 실제 데이터
CHAPTERS = sorted(ROOT.glob("[0-9][0-9]_*.py"))

os.environ.setdefault("MPLBACKEND", "Agg")  # 화면 없는 CI


def _threads_per_worker() -> int:
    """코어 수 ÷ pytest 작업자 수 (`-n 2` 면 2코어에서 1).

    작업자 둘이 각자 PyTorch 스레드 여럿을 쓰면 2코어에서 서로 기다리느라 몇 배 느려집니다
    (oversubscription). 그래서 시험 세션이 스스로 정합니다: 이 프로세스와, 시험이 띄우는 모든 하위
    프로세스(장 스크립트, torchrun)가 물려받는 OMP_NUM_THREADS. 사용자가 이미 정했으면 그대로 둡니다.
    torch 를 import 하기 전에 정해야 이 프로세스에도 적용됩니다 (conftest 는 시험 모듈보다 먼저 읽힘).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# TUTORIAL_TEST_THREADS: '시험 세션이 정한 값' 표시. pytest-xdist 의 작업자는 주 프로세스의 환경을
# 물려받으므로 (주 프로세스는 작업자 수를 모른 채 2 로 정함) 표시가 있으면 작업자가 자기 몫으로 다시 정합니다.
if "OMP_NUM_THREADS" not in os.environ or "TUTORIAL_TEST_THREADS" in os.environ:
    _threads = str(_threads_per_worker())
    os.environ.update(OMP_NUM_THREADS=_threads, MKL_NUM_THREADS=_threads, TUTORIAL_TEST_THREADS=_threads)
    if "torch" in sys.modules:  # 어떤 플러그인이 torch 를 먼저 불렀다면 환경 변수는 늦음
        sys.modules["torch"].set_num_threads(int(_threads))


@pytest.fixture(autouse=True)
def _same_random_start():
    """시험마다 같은 난수 상태에서 시작: 결과가 같은 작업자에서 먼저 돈 시험에 기대지 않게.

    pytest-xdist 는 시험을 작업자에 나눠 주는 순서가 실행마다 달라서, 시드 없이 모델을 만드는 시험은
    실행마다 다른 초기 가중치를 받습니다 (CI 에서 12장 수용 영역 시험이 200번에 2번 꼴로 떨어졌던 이유).
    """
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def load_chapter(number: str):
    """'01' → 01_pytorch_basics.py 를 모듈로 불러옵니다 (이름이 숫자로 시작해 import 불가)."""
    (path,) = [p for p in CHAPTERS if p.name.startswith(number + "_")]
    spec = importlib.util.spec_from_file_location(f"chapter_{number}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass 와 get_type_hints 가 모듈을 찾을 수 있도록
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec.loader.exec_module(module)
    return module


def run_script(script: Path | str, *args: str, timeout: float = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """스크립트를 사용자처럼 새 파이썬 프로세스로 실행합니다 (저장소 루트에서).

    env 로 환경 변수를 더할 수 있습니다 (예: TUTORIAL_SIGINT_AT 으로 정해진 곳에서 Ctrl+C).
    """
    base = {k: v for k, v in os.environ.items() if k != "TUTORIAL_SIGINT_AT"}
    env = dict(base, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8", **(env or {}))
    return subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def chapter_number(script: Path) -> str:
    return script.name[:2]


def smoke_args(out_dir: Path, *extra: str) -> list[str]:
    """모든 장이 같은 뜻으로 받는 점검 실행 플래그."""
    return ["--smoke", "--data", "offline", "--device", "cpu", "--out-dir", str(out_dir), *extra]


_SMOKE_RUNS: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """장마다 한 번만 돌리는 점검 실행 (smoke 시험·중단 시험·잘못된 입력 표가 함께 씀).

    반환: 함수 script → (실행 결과, 출력 폴더). 출력 폴더는 읽기만 하세요 (복사해서 고침).
    """
    def get(script: Path):
        key = script.name
        if key not in _SMOKE_RUNS:
            out_dir = tmp_path_factory.mktemp(f"smoke_{script.stem}")
            _SMOKE_RUNS[key] = (run_script(script, *smoke_args(out_dir)), out_dir)
        return _SMOKE_RUNS[key]

    return get


@pytest.fixture
def sigint_raises():
    """진짜 SIGINT 가 KeyboardInterrupt 가 되게 (셸의 배경 작업 &으로 시작한 파이썬은 SIGINT 를 무시함)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def chapter():
    return load_chapter


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`pytest -n 2 --dist loadgroup`: 한 장의 시험은 모두 같은 작업자(worker)에서 돌게 묶습니다.

    장마다 한 번만 도는 점검 실행(smoke_run)을 그 장의 smoke·중단·잘못된 입력 시험이 함께 쓰도록.
    """
    stems = {p.name[:2]: p.stem for p in CHAPTERS}
    for item in items:
        script = getattr(item, "callspec", None) and item.callspec.params.get("script")
        module = Path(str(item.fspath)).stem  # test_ch06 → 06
        number = script.name[:2] if isinstance(script, Path) else module[len("test_ch"):][:2]
        if module == "test_ddp":
            # torchrun 시험은 장의 묶음과 따로: 한 작업자에 한 장의 일이 몰리지 않게. torchrun --smoke 를
            # 함께 쓰는(ddp_smoke) 시험만 장마다 한 묶음, 나머지는 어느 작업자든
            if "ddp_smoke" in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(f"torchrun_{number if number in stems else '08'}"))
        elif number in stems:
            item.add_marker(pytest.mark.xdist_group(stems[number]))
