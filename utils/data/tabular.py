"""표 형식(tabular) 회귀 데이터: California housing (내려받기), 오프라인 대체 sklearn diabetes.

표준화(standardisation)는 여기서 하지 않습니다: 학습 분할의 통계만으로 해야 한다는 것이
01장의 가르칠 거리이기 때문입니다. 여기서는 원래 단위의 배열과 분할만 돌려줍니다.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.data.common import fallback_or_fail, try_download, wants_real_data

CALIFORNIA_URL = "https://ndownloader.figshare.com/files/5976036"  # scikit-learn 이 받는 주소
SMOKE_ROWS = 200  # --smoke 에서 쓰는 행 수


@dataclass
class TableSplits:
    """x: (N, D) float32 특성, y: (N,) float32 목표값, 원래 단위 그대로."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target_name: str
    name: str


def load_housing(mode: str, data_dir: str, smoke: bool, seed: int,
                 test_fraction: float = 0.2) -> TableSplits:
    """California 주택 가격(20,640 구역, 8개 특성, 목표: 중간 주택가 $100,000 단위).

    scikit-learn 의 `fetch_california_housing(data_home=<data_dir>/sklearn)` 이 이미 받은
    파일을 먼저 찾고, 없으면 시간 제한을 두고 내려받습니다. 안 되면 scikit-learn 에 들어
    있는 diabetes(442명, 10개 특성, 목표: 1년 뒤 질병 진행도)로 대신합니다.
    """
    from sklearn.datasets import fetch_california_housing, load_diabetes
    from sklearn.model_selection import train_test_split

    bunch, name = None, ""
    if wants_real_data(mode, smoke):
        data_home = Path(data_dir) / "sklearn"
        try:  # 1) 이미 받은 파일 (네트워크 없음)
            bunch, reason = fetch_california_housing(data_home=str(data_home),
                                                     download_if_missing=False), ""
        except OSError:  # 2) 시간 제한을 두고 내려받기
            bunch, reason = try_download(lambda: fetch_california_housing(
                data_home=str(data_home), n_retries=1, delay=0.5))
        if bunch is None:
            fallback_or_fail(mode, dataset="California housing", where=str(data_home),
                             url=CALIFORNIA_URL, reason=reason,
                             fallback="sklearn diabetes (오프라인 대체)")
        else:
            name = "California housing (real)"
            target_name = "median house value ($100k)"
    if bunch is None:
        bunch = load_diabetes()
        name = "sklearn diabetes (offline fallback)"
        target_name = "disease progression after one year"
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.float32)
    if smoke:
        x, y = x[:SMOKE_ROWS], y[:SMOKE_ROWS]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction,
                                                        random_state=seed)
    return TableSplits(x_train, y_train, x_test, y_test, list(bunch.feature_names),
                       target_name, name)
