"""일별 주가 시계열: matplotlib 에 들어 있는 GOOG 가격(기본값), 또는 Yahoo 형식 CSV(`--csv`).

GOOG 는 matplotlib 패키지에 함께 설치되는 실제 데이터(2004-08-19 ~ 2008-10-14, 1,047 거래일)
라서 내려받을 것이 없습니다: 오프라인 기본값이자 실제 데이터입니다.

CSV 는 Yahoo Finance 가 내보내는 모양(Date, Open, High, Low, Close, Adj Close, Volume)과
Nasdaq 이 내보내는 변형(Date, Close/Last, Volume, Open, High, Low; 값에 `$` 기호, 최신 날짜가
맨 위)을 모두 읽습니다. 창 만들기·분할·스케일링은 여기서 하지 않습니다: 05장이 가르치는
내용이기 때문입니다. 여기서는 날짜순으로 정렬된 원래 단위의 값만 돌려줍니다.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.data.common import wants_real_data
from utils.runtime import UserError

GOOG_NAME = "GOOG daily {column} 2004-2008 (matplotlib sample data)"
# 같은 뜻의 열 이름: Nasdaq 은 종가를 'Close/Last' 라고 씁니다.
COLUMN_ALIASES = {"close": ("close_last",), "close_last": ("close",)}


@dataclass
class PriceSeries:
    """날짜순으로 정렬된 한 열의 값. dates: (N,) datetime64[D], values: (N,) float64."""

    dates: np.ndarray
    values: np.ndarray
    column: str  # 파일에 적힌 열 이름 그대로 (예: 'Close/Last')
    name: str  # 실행 기록에 남는 이름


def _normalize(name: str) -> str:
    """열 이름 비교용: 'Adj Close' → 'adj_close', 'Close/Last' → 'close_last'."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def find_column(columns: list[str], wanted: str, source: str) -> str:
    """`wanted` 에 해당하는 실제 열 이름. 대소문자·공백·기호는 무시하고 별칭도 봅니다.

    없으면 파일에 있는 열 이름을 나열하는 UserError.
    """
    by_key = {_normalize(c): c for c in columns}
    key = _normalize(wanted)
    for candidate in (key, *COLUMN_ALIASES.get(key, ())):
        if candidate in by_key:
            return by_key[candidate]
    raise UserError(f"{source} 에 '{wanted}' 열이 없습니다. 있는 열: {', '.join(map(str, columns))}. "
                    "--column 으로 고르세요.")


def load_goog(column: str = "Close") -> PriceSeries:
    """matplotlib 의 goog.npz 에서 한 열(기본 종가)을 읽습니다.

    matplotlib 3.8 이후 `get_sample_data('goog.npz')` 는 이미 열린 NpzFile 을 돌려주고,
    그 이전 판은 파일 객체를 돌려줍니다. 둘 다 받습니다. 안에는 'price_data' 하나가 있고,
    필드가 date(datetime64[D]), open, high, low, close, volume, adj_close 인
    구조화 배열(structured array)입니다.
    """
    from matplotlib import cbook

    try:
        sample = cbook.get_sample_data("goog.npz")
        npz = sample if hasattr(sample, "files") else np.load(sample)
        records = npz["price_data"]
    except (OSError, KeyError, ValueError) as error:
        raise UserError(f"matplotlib 예제 데이터 goog.npz 를 읽을 수 없습니다 ({error}). "
                        "matplotlib 을 다시 설치하거나 --csv 로 가격 파일을 주세요.") from error
    fields = [f for f in records.dtype.names if f != "date"]
    name = find_column(fields, column, "GOOG 예제 데이터(goog.npz)")
    values = records[name].astype(np.float64)
    return PriceSeries(records["date"].astype("datetime64[D]"), values, name,
                       GOOG_NAME.format(column=name))


def read_price_csv(path: str | Path, column: str = "Close", min_rows: int = 2) -> PriceSeries:
    """Yahoo/Nasdaq 형식 CSV 한 열을 날짜순으로 읽습니다.

    - 'Date' 열과 `column` 열이 있어야 합니다 (없으면 있는 열을 나열하는 오류).
    - 값의 `$` 기호와 천 단위 쉼표는 지웁니다. 그래도 숫자가 아니면 그 줄을 말하는 오류.
    - 날짜가 거꾸로(최신이 위, Nasdaq) 또는 뒤섞여 있으면 정렬하고 한 줄로 알립니다.
      같은 날짜가 두 번 있으면 어느 쪽이 맞는지 알 수 없으므로 오류입니다.
    - 행이 `min_rows` 보다 적으면 오류 (창 길이와 분할이 필요로 하는 수).
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} 는 폴더입니다. 가격 CSV 파일 하나를 주세요 (예: NFLX.csv, Date 와 가격 열).")
    if not path.is_file():
        raise UserError(f"CSV 파일 {path} 이 없습니다.")
    try:
        table = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError as error:
        raise UserError(f"CSV 파일 {path} 이 비어 있습니다.") from error
    except (UnicodeDecodeError, pd.errors.ParserError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"CSV 파일 {path} 을 읽을 수 없습니다 ({reason}).") from error
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise UserError(f"CSV 파일 {path} 에 머리글만 있고 데이터 행이 없습니다.")
    date_column = find_column(list(table.columns), "Date", f"CSV 파일 {path}")
    value_column = find_column(list(table.columns), column, f"CSV 파일 {path}")

    # 파일의 줄 번호 = 표의 행 번호 + 2 (머리글이 1번 줄)
    dates = pd.to_datetime(table[date_column], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise UserError(f"{path} 의 {row + 2}번째 줄 날짜 '{table[date_column].iloc[row]}' 를 "
                        "읽을 수 없습니다 (예: 2024-01-31 또는 01/31/2024).")
    cleaned = table[value_column].fillna("").str.replace(r"[$,\s]", "", regex=True)
    values = pd.to_numeric(cleaned, errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{path} 의 {row + 2}번째 줄 '{value_column}' 값 "
                        f"'{table[value_column].iloc[row]}' 은 숫자가 아닙니다 "
                        f"(숫자가 아닌 줄 {int(bad.sum())}개). 그 줄을 지우거나 고치세요.")

    day = dates.dt.normalize().to_numpy().astype("datetime64[D]")
    duplicated = pd.Series(day).duplicated(keep=False).to_numpy()
    if duplicated.any():
        rows = np.flatnonzero(day == day[duplicated][0])
        raise UserError(f"{path} 에 날짜 {day[duplicated][0]} 가 여러 번 있습니다 "
                        f"({', '.join(str(r + 2) for r in rows)}번째 줄). 하루에 한 줄만 남기세요.")
    order = np.argsort(day, kind="stable")
    if (np.diff(day.astype(np.int64)) < 0).any():
        how = "최신 날짜가 위에 있어 뒤집었습니다" if (np.diff(day.astype(np.int64)) < 0).all() \
            else "날짜순이 아니어서 정렬했습니다"
        print(f"[데이터] {path.name}: {how} (과거 → 최신).")
    if len(day) < min_rows:
        raise UserError(f"{path} 에 데이터 행이 {len(day)}개뿐인데 최소 {min_rows}행이 필요합니다 "
                        "(창 길이 --window 와 학습/검증/시험 분할). "
                        "--window 를 줄이거나 더 긴 기간을 받으세요.")
    return PriceSeries(day[order], values.to_numpy(dtype=np.float64)[order], value_column,
                       f"{path.name} ({value_column})")


def load_prices(mode: str, csv: str, column: str, smoke: bool, min_rows: int) -> PriceSeries:
    """데이터 정책: `--csv` 가 있으면 그 파일, 없으면 GOOG.

    `--data offline` 과 `--smoke` 는 내장 GOOG 만 씁니다(외부 파일을 읽지 않음): `--csv` 를
    주었으면 무시한다고 한 줄로 알립니다. `--data real` 은 GOOG 도 실제 데이터이므로 그대로.
    """
    if csv and not wants_real_data(mode, smoke):
        print(f"[데이터] --data offline/--smoke 라서 --csv {csv} 대신 내장 GOOG 데이터를 씁니다.")
    elif csv:
        return read_price_csv(csv, column, min_rows)
    series = load_goog(column)
    if len(series.values) < min_rows:
        raise UserError(f"GOOG 데이터는 {len(series.values)}행인데 지금 설정에는 최소 {min_rows}행이 "
                        "필요합니다. --window 나 --horizon 을 줄이세요.")
    return series
