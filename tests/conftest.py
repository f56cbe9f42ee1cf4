"""테스트 공용 도구: 장(chapter) 스크립트를 모듈로 불러오기, 하위 프로세스로 실행하기."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # 프로젝트 옆에 있을 때만 쓰는 실제 데이터
CHAPTERS = sorted(ROOT.glob("[0-9][0-9]_*.py"))

os.environ.setdefault("MPLBACKEND", "Agg")  # 화면 없는 CI


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


def run_script(script: Path | str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """스크립트를 사용자처럼 새 파이썬 프로세스로 실행합니다 (저장소 루트에서)."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def chapter():
    return load_chapter
