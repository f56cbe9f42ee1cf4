"""데이터 정책(data policy): 실제 데이터 → 없으면 내려받기 → 안 되면 오프라인 대체 데이터.

- `--data auto`    : `--data-dir` 에 있거나 내려받을 수 있으면 실제 데이터, 아니면 대체 데이터
                     (한 줄로 알림).
- `--data real`    : 실제 데이터만. 없으면 어디에 무엇을 두어야 하는지 말하는 오류.
- `--data offline` : 네트워크를 전혀 쓰지 않음.
- `--smoke`        : 항상 오프라인.

내려받기는 라이브러리 자신의 코드(torchvision, scikit-learn)를 쓰되, 소켓 시간 제한을 두어
막힌 네트워크에서 오래 멈추지 않고 곧바로 실패하게 합니다.
"""

from __future__ import annotations

import contextlib
import io
import socket
import warnings

from utils.runtime import UserError

DOWNLOAD_TIMEOUT_SECONDS = 15  # 연결이 이만큼 응답이 없으면 포기 (느린 회선에서도 충분한 값)


def wants_real_data(mode: str, smoke: bool) -> bool:
    """실제 데이터를 찾아볼지: offline 이나 smoke 면 False."""
    if mode not in ("auto", "real", "offline"):
        raise UserError(f"알 수 없는 --data '{mode}': auto, real, offline 중 하나를 쓰세요.")
    return mode != "offline" and not smoke


@contextlib.contextmanager
def network_timeout(seconds: float = DOWNLOAD_TIMEOUT_SECONDS):
    """이 블록 안의 모든 소켓 연결에 시간 제한을 겁니다 (끝나면 원래대로)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def try_download(download_fn, *, quiet: bool = True):
    """`download_fn()` 을 시간 제한 안에서 실행합니다. 실패하면 (None, 이유 한 줄)을 돌려줍니다.

    라이브러리가 찍는 진행 메시지는 quiet=True 면 숨깁니다(실패 이유는 돌려받은 문장으로 알림).
    """
    sink = io.StringIO()
    try:
        with network_timeout(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 재시도 경고 등: 실패하면 이유를 한 줄로 알림
            with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
                return download_fn(), ""
    except Exception as error:  # 네트워크·체크섬·압축 해제 등 어떤 실패든 대체 데이터로 넘어감
        reason = str(error).strip().splitlines()
        return None, (reason[-1] if reason else type(error).__name__)[:200]


def fallback_or_fail(mode: str, *, dataset: str, where: str, url: str, reason: str,
                     fallback: str) -> None:
    """실제 데이터를 못 얻었을 때: real 이면 UserError, auto 면 대체한다는 한 줄을 출력."""
    if mode == "real":
        raise UserError(f"{dataset} 를 {where} 에서 찾지 못했고 내려받지도 못했습니다 ({reason}). "
                        f"파일을 {where} 에 두거나({url}) 네트워크를 연결하세요. "
                        "오프라인으로 돌리려면 --data offline.")
    print(f"[데이터] {dataset} 를 {where} 에서 찾지 못했고 내려받을 수도 없어 "
          f"{fallback} 로 대신합니다.")
