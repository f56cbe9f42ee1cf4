"""05장. LSTM 시계열 예측: 슬라이딩 창, 직접 만든 LSTM 셀, 정직한 기준선(baseline).

학습 목표
    - 시계열을 슬라이딩 창(sliding window)으로 지도 학습 문제로 바꾸고(1~30일 → 31일째,
      2~31일 → 32일째, ...), 시간 순서대로 학습/검증/시험을 나누고, 스케일러를 학습 구간에만
      맞춥니다.
    - LSTM 셀을 강의의 게이트 이름 그대로 직접 만들고 `nn.LSTM` 과 같은 값을 내는지 확인합니다.
      GRU 의 업데이트·리셋 게이트도 짧게 비교합니다 (`--cell lstm|gru|rnn`).
    - 모델보다 기준선을 먼저: '내일 = 오늘'(persistence)과 이동평균(moving average). 모든 지표
      (RMSE, MAE, MAPE, 방향 정확도, persistence 대비 기술 점수 skill)를 기준선 옆에 적습니다.
    - 가격 대 수익률: 그림에서 완벽해 보이는 가격 예측이 사실은 하루 밀린 persistence 라는 것.
    - 여러 날 앞 예측(`--horizon N`, 재귀 recursive)과 그 오차가 벌어지는 모습.
    - 배울 것이 있는 점검 계열(잡음 섞인 계절 신호)에서는 LSTM 이 persistence 를 크게 이긴다는 것.

핵심 개념
    슬라이딩 창, 데이터 누수(data leakage), 표준화(standardization), 게이트(gate), 셀 상태(cell
    state), 기울기 소실(vanishing gradient), persistence 기준선, 기술 점수 skill = 1 − RMSE_모델 /
    RMSE_persistence, 재귀 다단계 예측(recursive multi-step forecasting).

실행 방법
    python 05_lstm_sequence_prediction.py                       # GOOG 2004-2008 (matplotlib 내장)
    python 05_lstm_sequence_prediction.py --smoke               # 배치 하나씩, 몇 초 (테스트용)
    python 05_lstm_sequence_prediction.py --target return       # 가격 대신 로그 수익률을 예측
    python 05_lstm_sequence_prediction.py --cell gru            # GRU (또는 --cell rnn)
    python 05_lstm_sequence_prediction.py --no-residual         # 가격 수준을 직접 출력 (실패 사례)
    python 05_lstm_sequence_prediction.py --csv NFLX.csv --column "Adj Close"   # Yahoo 형식 CSV
    python 05_lstm_sequence_prediction.py --predict NFLX.csv --horizon 5        # 다음 5거래일 예측
    python 05_lstm_sequence_prediction.py --device cuda --hidden-size 128 --num-layers 2 \\
        --dropout 0.2 --epochs 100 --patience 20                # GPU 에서 크게 (측정하지 않음)
    `--resume` 은 out_dir 의 last.pt(마지막으로 끝난 epoch)에서 이어 학습하고, 끊지 않은 학습과 같은
    숫자를 냅니다. 다른 설정(예: --window 20 으로 --window 30 학습을 이어 하기)은 다른 점을 나열하며
    거절합니다 (--epochs 만 바꿀 수 있음). --predict 는 best.pt 하나로 모델·창 길이·스케일러를 모두
    되살리므로 --hidden-size 등을 다시 줄 필요가 없고, 결과를 prediction.json (last_price, next_price,
    path, warning)과 forecast.csv·forecast.png 로 씁니다.

기대 결과 (아래 블록은 benchmarks/run_all.py 가 씀; 그 밖의 숫자는 조건을 밝힌 따로 잰 값)
    GOOG 시험 구간(2008-03-04 ~ 2008-10-14, 157일), 종가 단위 달러. 하루 뒤 주가는 '오늘 값'(persistence)
    보다 잘 맞힐 수 없고 모델도 그것을 배웁니다: test_rmse ≈ persistence_rmse.
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · GOOG daily close 2004-2008 (matplotlib sample data) · cpu · seeds 42, 43, 44
      test_rmse 14.99 (14.99–15.01) · persistence_rmse 15 · wall 6.7 (6.4–7.4) s · peak 0.94 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    점검 계열(잡음 섞인 계절 신호, seed 42, 1회): LSTM RMSE 0.150 대 persistence 0.398, skill 0.62.
        배울 것이 있으면 같은 모델·코드가 크게 이깁니다.
    다른 설정(계약 개편 전 측정값, GOOG 시험 RMSE / skill): --target return 15.14 / −0.009, --cell gru
        15.02 / −0.001, --cell rnn 14.995 / +0.0004, --no-residual 19.19 / −0.28 (학습 구간 최고가
        555달러를 넘는 가격에서 무너짐).
    --predict: 가격 모델은 학습 구간의 가격 범위(GOOG 100~555달러)만 압니다. 입력 창이 그 밖이면
        (예: 잔잔한 62달러 주식) 한 줄로 두 범위를 알리고, 창을 학습 평균 가격으로 비례 변환해
        예측한 뒤 되돌립니다(변화율만 씀). 측정: 잔잔한 62달러 → 한 주 뒤 62.51 (+0.7%); 변환 없이
        넣으면 같은 모델이 가격 수준을 잘못 읽어 한 주에 −6.2% (개편 전 모델은 +11%).
        2008-10-14 GOOG 362.71 → 364.94 (범위 안이라 변환 없음).
    --csv 실제 파일(예: Netflix)의 결과와 GPU 결과는 측정하지 않았습니다.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림은 이 장의 주제가 아니라 모듈 하나로: viz.save_figure(...)
from utils.data import timeseries  # 가격 읽기: timeseries.load_prices, timeseries.read_price_csv
from utils.runtime import RunConfig, UserError, pick_device, run, write_run_record
from utils.synthetic import noisy_seasonal_series

# 모양(shape) 글자: K=창 개수(전체), B=배치, T=창 길이(시간 단계), D=입력 특성 수(여기서는 1),
#                  H=은닉 크기(hidden size), N=예측할 날 수(horizon)
MIN_TRAIN_WINDOWS = 20  # 학습 창이 이보다 적으면 배울 것이 없습니다
SANITY_SEED_OFFSET = 1  # 점검 계열 학습은 seed+1 로: 이어하기 여부와 상관없이 같은 결과
EVAL_BATCH_SIZE = 1024  # 평가는 기울기를 저장하지 않아 가벼움: 분할 하나(창 ~160개)를 한 번에


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "05_lstm_sequence_prediction"  # 출력 폴더 outputs/<chapter>/, 체크포인트 주인
    epochs: int = 20  # GOOG 모델의 최대 epoch (조기 종료가 먼저 멈추기도 함)
    batch_size: int = 128  # 창 128개씩; 학습 창 702개라 epoch 당 6걸음 (작은 모델이라 걸음 수가 시간을 정함)
    lr: float = 5e-3  # Adam 학습률; 은닉 32 인 작은 LSTM 은 이 정도에서도 안정적이고 빨리 수렴
    window: int = 30  # 입력 창 길이(일): 강의의 1~30일 → 31일째
    horizon: int = 5  # 여러 날 앞 예측의 날 수 (한 주 = 거래일 5일)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # 순환 셀 종류 (게이트 4개 / 3개 / 0개)
    hidden_size: int = 32  # 은닉 상태 크기 H; 하루 한 값짜리 계열에는 이 정도로 충분
    num_layers: int = 1  # 쌓은 순환 층 수
    dropout: float = 0.0  # 층 사이 드롭아웃 (num_layers ≥ 2 일 때만 의미)
    target: Literal["close", "return"] = "close"  # close: 다음날 가격, return: 다음날 로그 수익률
    residual: bool = True  # close 에서 '마지막 값 + 변화량' 출력 (끄면 학습 범위 밖 가격에서 무너짐)
    val_fraction: float = 0.15  # 검증 구간 비율 (시간 순서상 학습 다음)
    test_fraction: float = 0.15  # 시험 구간 비율 (맨 끝, 가장 최근)
    ma_window: int = 5  # 이동평균 기준선의 날 수 (거래일 한 주)
    patience: int = 5  # 검증 RMSE 가 이 epoch 수 동안 나아지지 않으면 멈춤
    sanity_epochs: int = 20  # 점검 계열 모델의 epoch 수 (주기를 배우는 데 충분한 만큼)
    sanity_length: int = 1000  # 점검 계열 길이 (GOOG 1,047일과 비슷하게)
    csv: str = ""  # Yahoo 형식 가격 CSV 경로; 비우면 GOOG (matplotlib 내장)
    column: str = "Close"  # 예측할 열: Close, Adj Close, Open ... (Close/Last 도 Close 로 읽음)
    predict: str = ""  # 이 CSV 의 마지막 창으로 다음 --horizon 일을 예측 (out_dir 의 best.pt 사용)

    def __post_init__(self):
        checks = [
            (self.window >= 2, f"--window 는 2 이상이어야 합니다 (받은 값: {self.window})."),
            (self.horizon >= 1, f"--horizon 은 1 이상이어야 합니다 (받은 값: {self.horizon})."),
            (self.hidden_size >= 1, f"--hidden-size 는 1 이상이어야 합니다 (받은 값: {self.hidden_size})."),
            (self.num_layers >= 1, f"--num-layers 는 1 이상이어야 합니다 (받은 값: {self.num_layers})."),
            (0.0 <= self.dropout < 1.0,
             f"--dropout 은 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout})."),
            (0.0 < self.val_fraction < 0.5 and 0.0 < self.test_fraction < 0.5
             and self.val_fraction + self.test_fraction <= 0.6,
             "--val-fraction 과 --test-fraction 은 각각 0~0.5 사이, 합이 0.6 이하여야 합니다."),
            (1 <= self.ma_window <= self.window,
             f"--ma-window 는 1 이상 --window({self.window}) 이하여야 합니다 (받은 값: {self.ma_window})."),
            (self.patience >= 1, f"--patience 는 1 이상이어야 합니다 (받은 값: {self.patience})."),
            (self.sanity_epochs >= 1,
             f"--sanity-epochs 는 1 이상이어야 합니다 (받은 값: {self.sanity_epochs})."),
            (self.sanity_length >= 200,
             f"--sanity-length 는 200 이상이어야 합니다 (받은 값: {self.sanity_length})."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# %% [markdown]
# # 1. 데이터 — 슬라이딩 창, 시간 순서 분할, 학습 구간에만 맞춘 스케일러
#
# 강의의 창: 1~30일 → 31일째, 2~31일 → 32일째, ... 창 k 의 입력은 series[k : k+T],
# 정답은 그 바로 다음 값 series[k+T] 입니다. 정답이 입력보다 하루라도 앞서면 미래를 보고
# 맞히는 셈(look-ahead)이라, 테스트가 이것을 확인합니다.

# %%
def make_windows(series: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """series: (L,) → 입력 (K, T), 정답 (K,), K = L − T. 정답 y[k] = series[k + T]."""
    inputs = series.unfold(0, window, 1)[:-1]  # (L−T+1, T) 에서 정답이 없는 마지막 창을 버림 → (K, T)
    targets = series[window:]  # (K,)
    return inputs, targets


@dataclass
class Scaler:
    """표준화 z = (x − mean) / std. mean·std 는 학습 구간에서만 계산합니다.

    전체 계열로 맞추면 시험 구간(미래)의 평균과 흩어짐이 학습 입력에 스며들어, 실제로는 쓸 수
    없는 정보로 점수가 좋아집니다: 데이터 누수(data leakage).
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        return cls(float(np.mean(values)), float(np.std(values)) or 1.0)

    def transform(self, values):
        return (values - self.mean) / self.std

    def inverse(self, values):
        return values * self.std + self.mean


@dataclass
class WindowedSeries:
    """창으로 자른 한 계열과 그 분할. 각 분할(train/val/test)은 dict:

    x (K, T) 표준화된 입력, y (K,) 표준화된 정답, index (K,) 정답의 날짜 위치,
    last_price (K,) 창의 마지막 날 가격, true_price (K,) 정답 날 가격 (원래 단위, float64).
    """

    prices: np.ndarray  # (L,) 원래 단위
    scaler: Scaler
    target: str
    train_end: int  # 가격 위치 [0, train_end) = 학습 구간
    val_end: int  # [train_end, val_end) = 검증, [val_end, L) = 시험
    splits: dict[str, dict[str, torch.Tensor]]


def split_bounds(length: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """시간 순서대로 자르는 두 경계: 과거 → 학습 | 검증 | 시험 → 최근. 섞지 않습니다."""
    n_test = round(length * test_fraction)
    n_val = round(length * val_fraction)
    return length - n_val - n_test, length - n_test


def minimum_rows(config: Config) -> int:
    """창 길이와 분할이 요구하는 최소 행 수: 학습 창 MIN_TRAIN_WINDOWS 개, 검증 창 1개,
    시험 창은 horizon 일 앞까지 맞춰 볼 수 있을 만큼."""
    train_fraction = 1 - config.val_fraction - config.test_fraction
    return max(math.ceil((config.window + 1 + MIN_TRAIN_WINDOWS) / train_fraction),
               math.ceil((config.horizon + 1) / config.test_fraction),
               math.ceil(2 / config.val_fraction))


def prepare_series(prices: np.ndarray, *, window: int, target: str, val_fraction: float,
                   test_fraction: float) -> WindowedSeries:
    """가격 (L,) → 창과 분할. target='close' 는 가격을, 'return' 은 로그 수익률을 예측합니다.

    로그 수익률 r_t = log(p_t / p_{t−1}) 은 p_1 부터 있으므로 창이 하루 늦게 시작합니다.
    두 목표가 같은 날들을 맞히도록(지표를 나란히 비교하도록) 정답 위치가 T+1 이상인 창만 씁니다.
    """
    prices = np.asarray(prices, dtype=np.float64)
    train_end, val_end = split_bounds(len(prices), val_fraction, test_fraction)
    if target == "return":
        if (prices <= 0).any():
            raise UserError("로그 수익률(--target return)은 0 이하의 가격에서 정의되지 않습니다. "
                            "--target close 를 쓰세요.")
        values = np.diff(np.log(prices))  # values[j] = log(p[j+1] / p[j]), 길이 L−1
        offset = 1  # values 의 위치 j 는 가격 위치 j+1
    else:
        values, offset = prices, 0
    # 스케일러는 학습 구간의 값만으로: 정답 위치가 train_end 보다 앞선 값들
    scaler = Scaler.fit(values[: train_end - offset])
    inputs, targets = make_windows(torch.tensor(scaler.transform(values), dtype=torch.float32), window)
    index = np.arange(window, len(values)) + offset  # 각 창의 정답이 놓인 가격 위치
    keep = index >= window + 1
    masks = {"train": keep & (index < train_end),
             "val": (index >= train_end) & (index < val_end),
             "test": index >= val_end}
    splits = {}
    for name, mask in masks.items():
        rows = torch.from_numpy(np.flatnonzero(mask))
        splits[name] = {"x": inputs[rows], "y": targets[rows], "index": torch.from_numpy(index[mask]),
                        "last_price": torch.from_numpy(prices[index[mask] - 1]),
                        "true_price": torch.from_numpy(prices[index[mask]])}
    return WindowedSeries(prices, scaler, target, train_end, val_end, splits)


def keep_first_batch(data: WindowedSeries, batch_size: int) -> None:
    """--smoke: 분할마다 앞쪽 창 한 배치만 남깁니다 (학습 한 배치, 평가 한 배치)."""
    data.splits = {name: {key: value[:batch_size] for key, value in split.items()}
                   for name, split in data.splits.items()}


def prepare_data(config: Config):
    """가격 계열 읽기 → 창과 분할 → 무엇을 어떻게 나눴는지 출력. (series, data) 를 돌려줍니다.

    난수를 쓰지 않습니다: 분할은 시간 순서, 창은 슬라이딩이라 언제나 같습니다.
    """
    series = timeseries.load_prices(config.data, config.csv, config.column, config.smoke,
                                    minimum_rows(config))
    data = prepare_series(series.values, window=config.window, target=config.target,
                          val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    if config.smoke:
        keep_first_batch(data, config.batch_size)
    train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
    dates = series.dates
    goal = "다음날 가격" if config.target == "close" else "다음날 로그 수익률"
    print(f"[1. 데이터] {series.name}: {len(series.values)}일, {dates[0]} ~ {dates[-1]}, 목표 = {goal}")
    print(f"  분할(시간 순서): 학습 ~{dates[data.train_end - 1]} | 검증 ~{dates[data.val_end - 1]} | "
          f"시험 ~{dates[-1]};  창 수 {len(train['x'])} / {len(val['x'])} / {len(test['x'])}")
    first = int(train["index"][0])  # 첫 학습 창의 정답 위치
    print(f"  창 모양: 입력 {tuple(train['x'].shape)} (K, T), 정답 {tuple(train['y'].shape)} (K,); "
          f"첫 학습 창 = 위치 {first - config.window}~{first - 1} 의 {config.window}일 → 위치 {first}")
    print(f"  스케일러(학습 구간만): 평균 {data.scaler.mean:.4f}, 표준편차 {data.scaler.std:.4f}")
    print(f"  검증 구간의 persistence RMSE = {rmse(val['last_price'], val['true_price']):.3f}: "
          "val_rmse 가 이보다 작아야 '어제 값 복사'보다 나은 것")
    return series, data


def prediction_extra(config: Config, series, data: WindowedSeries) -> dict:
    """체크포인트의 extra: 가중치 밖에서 --predict 가 필요한 것 (창 길이, 목표, 스케일러, 학습 가격 범위)."""
    train_prices = data.prices[: data.train_end]
    return {"data": series.name, "window": config.window, "target": config.target, "column": series.column,
            "scaler_mean": data.scaler.mean, "scaler_std": data.scaler.std,
            "train_range": [float(train_prices.min()), float(train_prices.max())]}


def to_price(prediction: torch.Tensor, last_price: torch.Tensor, scaler: Scaler, target: str) -> torch.Tensor:
    """모델 출력(표준화된 값, (K,)) → 원래 단위 가격 (K,) float64."""
    value = scaler.inverse(prediction.double().cpu())
    return last_price * torch.exp(value) if target == "return" else value


# %% [markdown]
# # 2. 모델 — LSTM 셀을 직접, 그다음 nn.LSTM
#
# 강의의 기호 그대로 ([a, b] 는 이어 붙이기 concatenation, ⊙ 는 원소별 곱):
#   f_t = σ(W_f·[h_{t−1}, x_t] + b_f)        망각 게이트(forget gate): 예전 기억을 얼마나 남길지
#   i_t = σ(W_i·[h_{t−1}, x_t] + b_i)        입력 게이트(input gate): 새 후보를 얼마나 넣을지
#   ĉ_t = tanh(W_c·[h_{t−1}, x_t] + b_c)     후보 기억(candidate)
#   c_t = f_t ⊙ c_{t−1} + i_t ⊙ ĉ_t          셀 상태(cell state): 더하기로 이어지는 길
#   o_t = σ(W_o·[h_{t−1}, x_t] + b_o)        출력 게이트(output gate)
#   h_t = o_t ⊙ tanh(c_t)                    은닉 상태(hidden state)
# 셀 상태가 곱하기가 아니라 더하기(f_t ⊙ c_{t−1} + ...)로 이어지므로, f_t ≈ 1 이면 기울기가
# 여러 시간 단계를 거쳐도 줄지 않습니다: 단순 RNN 의 기울기 소실(vanishing gradient)에 대한 답.

# %%
class ScratchLSTMCell(nn.Module):
    """한 시간 단계의 LSTM. x_t: (B, D), (h, c): 각각 (B, H) → (h_t, c_t)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        concat = hidden_size + input_size  # [h_{t−1}, x_t] 의 길이
        self.forget_gate = nn.Linear(concat, hidden_size)
        self.input_gate = nn.Linear(concat, hidden_size)
        self.candidate = nn.Linear(concat, hidden_size)
        self.output_gate = nn.Linear(concat, hidden_size)

    def forward(self, x_t, state):
        h_prev, c_prev = state
        hx = torch.cat([h_prev, x_t], dim=1)  # (B, H+D) = [h_{t−1}, x_t]
        f_t = torch.sigmoid(self.forget_gate(hx))
        i_t = torch.sigmoid(self.input_gate(hx))
        c_hat = torch.tanh(self.candidate(hx))
        c_t = f_t * c_prev + i_t * c_hat
        o_t = torch.sigmoid(self.output_gate(hx))
        h_t = o_t * torch.tanh(c_t)
        return h_t, c_t


def run_scratch_lstm(cell: ScratchLSTMCell, x: torch.Tensor):
    """x: (B, T, D) 를 시간 순서로 한 단계씩 → 출력 (B, T, H), 마지막 (h_T, c_T) 각 (B, H)."""
    batch, steps, _ = x.shape
    hidden = cell.forget_gate.out_features
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    outputs = []
    for t in range(steps):
        h, c = cell(x[:, t], (h, c))
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)  # (B, T, H)


@torch.no_grad()
def copy_lstm_weights(lstm: nn.LSTM, cell: ScratchLSTMCell) -> None:
    """nn.LSTM 1층의 가중치를 직접 만든 셀에 복사합니다.

    nn.LSTM 은 네 게이트를 i, f, g(=ĉ), o 순서로 세로로 쌓고, x 와 h 를 따로 곱합니다:
    weight_ih (4H, D), weight_hh (4H, H), 편향 bias_ih + bias_hh. [h, x] 순서에 맞춰
    W_gate = [W_hh_gate, W_ih_gate] 로 가로로 붙이면 강의의 W·[h_{t−1}, x_t] 와 같습니다.
    """
    w_ih = lstm.weight_ih_l0.chunk(4)  # 4 × (H, D)
    w_hh = lstm.weight_hh_l0.chunk(4)  # 4 × (H, H)
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).chunk(4)  # 4 × (H,)
    gates = [cell.input_gate, cell.forget_gate, cell.candidate, cell.output_gate]
    for k, gate in enumerate(gates):
        gate.weight.copy_(torch.cat([w_hh[k], w_ih[k]], dim=1))  # (H, H+D)
        gate.bias.copy_(bias[k])


# GRU 는 게이트 두 개로 같은 일을 합니다 (셀 상태 없이 h 하나). PyTorch 의 식:
#   r_t = σ(W_r·[h_{t−1}, x_t] + b_r)                     리셋 게이트(reset): 과거를 얼마나 볼지
#   z_t = σ(W_z·[h_{t−1}, x_t] + b_z)                     업데이트 게이트(update): 과거를 얼마나 남길지
#   n_t = tanh(W_in·x_t + b_in + r_t ⊙ (W_hn·h_{t−1} + b_hn))
#   h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
# LSTM 의 f_t 와 i_t 를 z_t 와 1 − z_t 하나로 묶은 셈이라 파라미터가 3/4 입니다.
class ScratchGRUCell(nn.Module):
    """한 시간 단계의 GRU. x_t: (B, D), h: (B, H) → h_t (B, H)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.reset_gate = nn.Linear(hidden_size + input_size, hidden_size)
        self.update_gate = nn.Linear(hidden_size + input_size, hidden_size)
        self.new_from_x = nn.Linear(input_size, hidden_size)
        self.new_from_h = nn.Linear(hidden_size, hidden_size)  # 리셋 게이트가 이 부분만 거름

    def forward(self, x_t, h_prev):
        hx = torch.cat([h_prev, x_t], dim=1)  # (B, H+D)
        r_t = torch.sigmoid(self.reset_gate(hx))
        z_t = torch.sigmoid(self.update_gate(hx))
        n_t = torch.tanh(self.new_from_x(x_t) + r_t * self.new_from_h(h_prev))
        return (1 - z_t) * n_t + z_t * h_prev


@torch.no_grad()
def copy_gru_weights(gru: nn.GRU, cell: ScratchGRUCell) -> None:
    """nn.GRU 1층(게이트 순서 r, z, n)의 가중치를 직접 만든 셀에 복사합니다."""
    w_ih, w_hh = gru.weight_ih_l0.chunk(3), gru.weight_hh_l0.chunk(3)
    b_ih, b_hh = gru.bias_ih_l0.chunk(3), gru.bias_hh_l0.chunk(3)
    for k, gate in enumerate([cell.reset_gate, cell.update_gate]):
        gate.weight.copy_(torch.cat([w_hh[k], w_ih[k]], dim=1))
        gate.bias.copy_(b_ih[k] + b_hh[k])
    cell.new_from_x.weight.copy_(w_ih[2])
    cell.new_from_x.bias.copy_(b_ih[2])
    cell.new_from_h.weight.copy_(w_hh[2])
    cell.new_from_h.bias.copy_(b_hh[2])


def check_scratch_cells(hidden_size: int = 8) -> float:
    """직접 만든 LSTM·GRU 셀이 같은 가중치의 nn.LSTM·nn.GRU 와 같은 값을 내는지 확인합니다."""
    x = torch.randn(4, 6, 3)  # (B, T, D)
    lstm = nn.LSTM(3, hidden_size, batch_first=True)
    cell = ScratchLSTMCell(3, hidden_size)
    copy_lstm_weights(lstm, cell)
    with torch.no_grad():
        ours, (h_ours, c_ours) = run_scratch_lstm(cell, x)
        theirs, (h_theirs, c_theirs) = lstm(x)  # h_theirs: (층 수, B, H)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(h_ours, h_theirs[0], atol=1e-6) and torch.allclose(c_ours, c_theirs[0], atol=1e-6)

    gru = nn.GRU(3, hidden_size, batch_first=True)
    gru_cell = ScratchGRUCell(3, hidden_size)
    copy_gru_weights(gru, gru_cell)
    with torch.no_grad():
        h = x.new_zeros(4, hidden_size)
        gru_outputs = []
        for t in range(x.shape[1]):
            h = gru_cell(x[:, t], h)
            gru_outputs.append(h)
        gru_theirs, _ = gru(x)
    assert torch.allclose(torch.stack(gru_outputs, dim=1), gru_theirs, atol=1e-6)
    return (ours - theirs).abs().max().item()


# 학습에는 빠른 라이브러리 층(nn.LSTM/nn.GRU/nn.RNN, GPU 에서는 cuDNN)을 씁니다: 위에서 같은
# 계산임을 확인했습니다.
class Forecaster(nn.Module):
    """창 (B, T) → 다음 값 (B,) (표준화된 단위).

    residual=True 이면 출력 = 창의 마지막 값 + 예측한 변화량. 가격 수준을 직접 내면 출력이
    학습 구간에서 본 가격 범위에 묶여서, 그보다 비싼 검증·시험 구간에서 크게 틀립니다
    (`--no-residual` 로 확인해 보세요). 변화량은 가격 수준과 상관없이 비슷한 크기입니다.
    """

    def __init__(self, cell: str, hidden_size: int, num_layers: int, dropout: float, residual: bool):
        super().__init__()
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn_class(input_size=1, hidden_size=hidden_size, num_layers=num_layers,
                             dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.residual = residual

    def forward(self, x):
        outputs, _ = self.rnn(x.unsqueeze(-1))  # (B, T, 1) → (B, T, H)
        change = self.head(outputs[:, -1]).squeeze(-1)  # 마지막 시간 단계의 h_T 만 씀 → (B,)
        return x[:, -1] + change if self.residual else change


def build_model(cell: str, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                residual: bool = True) -> Forecaster:
    """체크포인트의 model_args 만으로 --resume·--predict 가 같은 모델을 다시 만듭니다.

    창 길이(window)는 모델의 모양을 바꾸지 않습니다(같은 가중치를 시점마다 다시 씀): 그래서 model_args
    가 아니라 설정(config)과 extra 에 있고, --resume 은 다른 --window 를 거절합니다.
    """
    return Forecaster(cell, hidden_size, num_layers, dropout, residual)


def forecaster_args(config: Config, target: str) -> dict:
    """설정 → model_args. 수익률은 이미 '변화량'이라 residual 을 더하면 '내일 수익률 = 오늘 수익률 + …'
    이 되어 맞지 않으므로 가격(close) 목표에서만 residual 을 씁니다."""
    return {"cell": config.cell, "hidden_size": config.hidden_size, "num_layers": config.num_layers,
            "dropout": config.dropout, "residual": config.residual and target == "close"}


# %% [markdown]
# # 3. 학습 — 창을 섞는 것은 괜찮고, 시간 구간을 섞는 것은 안 됩니다
#
# 학습 구간 안의 창들은 순서를 섞어도 됩니다(각 창이 자기 과거만 봄). 분할 자체는 시간
# 순서라 검증·시험 창의 정답은 모두 학습 구간 이후의 날입니다.

# %%
def train_one_epoch(model, optimizer, x, y, batch_size: int, epoch: int, device,
                    max_batches: int | None = None, desc: str | None = None) -> float:
    """창 (K, T), 정답 (K,) 으로 한 epoch. 평균 학습 손실(MSE, 표준화 단위)을 돌려줍니다."""
    model.train()
    order = torch.randperm(len(x))  # 전역 난수 생성기: 이어하기 때 체크포인트가 상태를 되돌림
    batches = list(order.split(batch_size))[:max_batches]
    total, count = torch.zeros((), device=device), 0
    for step, rows in enumerate(training.progress(batches, desc=desc or f"epoch {epoch}"), start=1):
        inputs, targets = x[rows].to(device), y[rows].to(device)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        training.check_finite(loss, epoch, step)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(rows)
        count += len(rows)
    return (total / count).item()


@torch.no_grad()
def predict_windows(model, x, device, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """창 (K, T) → 예측 (K,) (표준화 단위, CPU). model.eval(): 드롭아웃을 끄고 항상 같은 출력."""
    model.eval()
    outputs = [model(chunk.to(device)).cpu() for chunk in x.split(batch_size)]
    return torch.cat(outputs) if outputs else torch.zeros(0)


def evaluate(model, split: dict, data: WindowedSeries, device) -> dict:
    """한 분할의 손실(표준화 단위 MSE)과 가격 단위 RMSE."""
    prediction = predict_windows(model, split["x"], device)
    price = to_price(prediction, split["last_price"], data.scaler, data.target)
    return {"loss": nn.functional.mse_loss(prediction, split["y"]).item(),
            "rmse": rmse(price, split["true_price"]), "price": price}


# %% [markdown]
# # 4. 평가 — 기준선 먼저, 모든 지표를 기준선 옆에
#
# persistence: 내일 = 오늘 (p̂_t = p_{t−1}). 주가처럼 무작위 걸음(random walk)에 가까운 계열에서
# 이기기 매우 어렵습니다. 이동평균: 최근 ma_window 일의 평균. skill = 1 − RMSE_모델 /
# RMSE_persistence: 0 이면 persistence 와 같고, 음수면 진 것입니다.

# %%
def rmse(prediction: torch.Tensor, actual: torch.Tensor) -> float:
    return torch.sqrt(torch.mean((prediction - actual) ** 2)).item()


def forecast_metrics(prediction: torch.Tensor, actual: torch.Tensor, last: torch.Tensor) -> dict:
    """RMSE, MAE, MAPE(%), 방향 정확도(%): 모두 원래 단위(달러)의 (K,) 텐서로 계산.

    방향 정확도: 예측한 변화(p̂_t − p_{t−1})와 실제 변화(p_t − p_{t−1})의 부호가 같은 비율.
    변화를 전혀 예측하지 않는 persistence 에는 정의되지 않아 None 입니다.
    """
    error = prediction - actual
    predicted_move = torch.sign(prediction - last)
    direction = None
    if predicted_move.abs().sum() > 0:
        moved = actual != last  # 실제로 값이 바뀐 날만 셉니다
        direction = 100 * (predicted_move[moved] == torch.sign(actual - last)[moved]).double().mean().item()
    return {"rmse": rmse(prediction, actual), "mae": error.abs().mean().item(),
            "mape": 100 * (error.abs() / actual.abs()).mean().item(), "direction": direction}


def baseline_predictions(data: WindowedSeries, split: dict, ma_window: int) -> dict[str, torch.Tensor]:
    """persistence 와 이동평균 예측 (원래 단위, (K,)): 정답 날 바로 전까지의 가격만 씁니다."""
    prices = torch.from_numpy(data.prices)
    index = split["index"]
    recent = torch.stack([prices[index - lag] for lag in range(1, ma_window + 1)], dim=1)  # (K, ma_window)
    return {"persistence": split["last_price"], f"moving average ({ma_window}d)": recent.mean(dim=1)}


def skill(model_rmse: float, persistence_rmse: float) -> float:
    """1 − RMSE_모델 / RMSE_persistence: 양수면 persistence 보다 나음."""
    return 1.0 - model_rmse / persistence_rmse


def print_metric_table(rows: dict[str, dict], title: str) -> None:
    print(title)
    print(f"  {'model':<24}{'RMSE':>10}{'MAE':>10}{'MAPE %':>9}{'direction %':>13}")
    for name, m in rows.items():
        direction = "n/a" if m["direction"] is None else f"{m['direction']:.1f}"
        print(f"  {name:<24}{m['rmse']:>10.3f}{m['mae']:>10.3f}{m['mape']:>9.2f}{direction:>13}")


def verdict(name: str, model_skill: float) -> str:
    """기술 점수를 한 문장으로: 지면 진다고 분명히 말합니다."""
    percent = abs(model_skill) * 100
    if model_skill < 0:
        return (f"{name} 이 persistence(내일 = 오늘)에 졌습니다: RMSE 가 {percent:.2f}% 더 큽니다."
                + (" 사실상 같은 수준이며, 가격 예측이 대부분 '어제 값 복사'라는 뜻입니다."
                   if percent < 1 else ""))
    if model_skill < 0.01:
        return (f"{name} 이 persistence 보다 RMSE 가 {percent:.2f}% 작을 뿐입니다: 사실상 같은 수준 "
                "('어제 값 복사'와 다르지 않음).")
    return f"{name} 이 persistence 를 이겼습니다: RMSE 가 {percent:.1f}% 작습니다."


# %% [markdown]
# ## 4-2. 여러 날 앞 예측 — 재귀(recursive)
#
# 하루 앞만 배운 모델로 N일 앞을 맞히려면 예측값을 창 끝에 붙이고 가장 오래된 날을 버려 다시
# 예측합니다. 앞 단계의 오차가 다음 입력이 되므로, 오차는 날이 갈수록 벌어집니다(fan-out).

# %%
@torch.no_grad()
def forecast_recursive(model, windows: torch.Tensor, steps: int, device) -> torch.Tensor:
    """창 (B, T) → 다음 steps 개 예측 (B, N) (표준화 단위)."""
    model.eval()  # 드롭아웃 끄기
    current = windows.to(device)
    outputs = []
    for _ in range(steps):
        next_value = model(current)  # (B,)
        outputs.append(next_value)
        current = torch.cat([current[:, 1:], next_value[:, None]], dim=1)  # (B, T): 한 칸 밀기
    return torch.stack(outputs, dim=1).cpu()  # (B, N)


def path_to_prices(path: torch.Tensor, last_price: torch.Tensor, scaler: Scaler, target: str) -> torch.Tensor:
    """재귀 예측 (B, N) → 가격 경로 (B, N). 수익률이면 누적: p_{t+h} = p_{t−1}·exp(Σ r)."""
    values = scaler.inverse(path.double())
    if target == "return":
        return last_price[:, None] * torch.exp(torch.cumsum(values, dim=1))
    return values


def evaluate_multistep(model, data: WindowedSeries, horizon: int, device) -> dict:
    """시험 구간의 각 시작점에서 horizon 일 앞까지: 날별 RMSE (모델, persistence)."""
    split = data.splits["test"]
    usable = split["index"] + horizon - 1 < len(data.prices)  # 끝까지 정답이 있는 시작점만
    starts = split["index"][usable]  # (B,) 첫 예측 날의 위치
    last = split["last_price"][usable]
    path = path_to_prices(forecast_recursive(model, split["x"][usable], horizon, device),
                          last, data.scaler, data.target)  # (B, N)
    prices = torch.from_numpy(data.prices)
    actual = torch.stack([prices[starts + h] for h in range(horizon)], dim=1)  # (B, N)
    model_rmse = torch.sqrt(((path - actual) ** 2).mean(dim=0))  # (N,)
    persistence_rmse = torch.sqrt(((last[:, None] - actual) ** 2).mean(dim=0))  # (N,)
    return {"starts": starts, "path": path, "model_rmse": model_rmse.tolist(),
            "persistence_rmse": persistence_rmse.tolist()}


# %% [markdown]
# # 5. 시각화 — 그림 속 글자는 영어 (글꼴 문제 없이 어디서나 같게)

# %%
def plot_series_split(dates, data: WindowedSeries, title: str, path: Path, show: bool) -> Path:
    """전체 계열과 분할 경계."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(dates, data.prices, lw=1, color="black")
    bounds = [(0, data.train_end, "train", "tab:blue"),
              (data.train_end, data.val_end, "validation", "tab:orange"),
              (data.val_end, len(data.prices), "test", "tab:green")]
    for start, end, label, color in bounds:
        ax.axvspan(dates[start], dates[end - 1], alpha=0.15, color=color, label=label)
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return viz.save_figure(fig, path, show)


def plot_training_history(config: Config, rows: list[dict], column: str) -> Path:
    """학습 곡선: epoch 마다 학습·검증 손실 (표준화 단위 MSE)과 best.pt 를 고르는 검증 RMSE → history.png."""
    return viz.plot_history(rows, Path(config.out_dir) / "history.png", show=config.show,
                            title=f"{config.cell.upper()} on {column}: training history",
                            metrics=["val_rmse"], metric_label="validation RMSE (price units)")


def plot_test_predictions(dates, actual, predictions: dict, title: str, path: Path, show: bool) -> Path:
    """시험 구간: 실제 값 대 예측들, 그리고 앞 30일 확대 (하루 밀린 모양이 보이도록)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
    zoom = slice(0, min(30, len(actual)))
    for ax, part in zip(axes, (slice(None), zoom)):
        ax.plot(dates[part], actual[part], color="black", lw=1.5, label="actual")
        for k, (name, values) in enumerate(predictions.items()):  # 첫째 = 모델(실선), 나머지 = 기준선(점선)
            ax.plot(dates[part], values[part], lw=1, ls="-" if k == 0 else "--", label=name)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].set_title(title)
    axes[1].set_title("first 30 test days (zoom)")
    axes[0].legend()
    return viz.save_figure(fig, path, show)


def plot_residuals(dates, residuals: dict, path: Path, show: bool) -> Path:
    """잔차(residual) = 예측 − 실제: 시간에 따라, 그리고 분포."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for name, values in residuals.items():
        axes[0].plot(dates, values, lw=1, label=name)
        axes[1].hist(values, bins=30, alpha=0.5, label=name)
    axes[0].axhline(0, color="black", lw=0.8)
    axes[0].set_title("residuals on the test part (prediction - actual)")
    axes[0].tick_params(axis="x", labelrotation=30)
    axes[1].set_title("residual distribution")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    return viz.save_figure(fig, path, show)


def plot_multistep(dates, prices, multistep: dict, horizon: int, path: Path, show: bool) -> Path:
    """왼쪽: 시험 구간 위에 몇 개의 재귀 예측 경로, 오른쪽: 며칠 앞인지에 따른 RMSE."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    starts = multistep["starts"]
    first = int(starts[0]) - 1 if len(starts) else 0
    axes[0].plot(dates[first:], prices[first:], color="black", lw=1, label="actual")
    every = max(1, horizon * 2)  # 경로가 겹치지 않게 띄엄띄엄
    for k in range(0, len(starts), every):
        start = int(starts[k])
        axes[0].plot(dates[start - 1:start + horizon], np.r_[prices[start - 1], multistep["path"][k].numpy()],
                     color="tab:red", lw=1, label="recursive forecast" if k == 0 else None)
    axes[0].set_title(f"{horizon}-step recursive forecasts on the test part")
    axes[0].tick_params(axis="x", labelrotation=30)
    steps = range(1, horizon + 1)
    axes[1].plot(steps, multistep["model_rmse"], marker="o", label="model")
    axes[1].plot(steps, multistep["persistence_rmse"], marker="s", label="persistence")
    axes[1].set_xticks(list(steps))
    axes[1].set_xlabel("days ahead")
    axes[1].set_ylabel("RMSE")
    axes[1].set_title("error fan-out")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    return viz.save_figure(fig, path, show)


# %% [markdown]
# # 6. 추론 — 아무 CSV 의 마지막 창으로 다음 N일

# %%
def scale_free_window(prices: np.ndarray, window: int, target: str, scaler: Scaler,
                      train_range: list[float]) -> tuple[torch.Tensor, float, str | None]:
    """예측에 넣을 마지막 창 (1, T), 비례 변환 배율, 경고(없으면 None).

    가격(close) 모델은 학습 구간에서 본 가격 수준만 압니다(입력이 표준화된 가격). 수백 달러 GOOG 로
    학습한 모델에 62달러 주식을 그대로 넣으면 '학습 범위 밖의 낮은 가격'으로 읽혀 엉뚱하게 오릅니다.
    그래서 입력 창이 학습 구간의 가격 범위를 벗어나면 창 전체에 같은 배율을 곱해 학습 평균 가격으로
    옮긴 뒤 예측하고, 같은 배율로 나눠 되돌립니다. 예측은 '변화율'만 옮겨 오므로 가격 단위와
    무관합니다(scale-free). 로그 수익률 모델은 원래 단위가 없어 그대로 씁니다.
    """
    if target == "return":
        values = np.diff(np.log(prices))[-window:]  # 창 = 마지막 window 개의 로그 수익률
        return torch.tensor(scaler.transform(values), dtype=torch.float32)[None], 1.0, None
    recent = prices[-window:]
    low, high = train_range
    if low <= recent.min() and recent.max() <= high:
        return torch.tensor(scaler.transform(recent), dtype=torch.float32)[None], 1.0, None
    factor = scaler.mean / recent[-1]  # 마지막 날 가격 → 학습 평균 가격
    warning = (f"입력 창의 가격 {recent.min():.2f}~{recent.max():.2f} 가 학습 구간 가격 {low:.2f}~{high:.2f} "
               f"밖이라, 창을 학습 평균 {scaler.mean:.2f} 수준으로 비례 변환해 예측하고 되돌렸습니다 "
               "(변화율만 씀).")
    return torch.tensor(scaler.transform(recent * factor), dtype=torch.float32)[None], factor, warning


def predict(config: Config, device) -> dict:
    """`--predict prices.csv`: best.pt 하나로 다음 horizon 거래일 (모델 설정·창 길이·스케일러가 그 안에)."""
    out_dir = Path(config.out_dir)
    # 먼저 모델 (best.pt 가 없거나 잘못되었으면 여기서 한 줄 오류)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    extra = checkpoint["extra"]
    window, target = int(extra["window"]), str(extra["target"])
    scaler = Scaler(float(extra["scaler_mean"]), float(extra["scaler_std"]))
    series = timeseries.read_price_csv(config.predict, config.column, min_rows=window + (target == "return"))
    prices = series.values
    if target == "return" and (prices <= 0).any():
        raise UserError(f"{config.predict}: 로그 수익률 모델은 0 이하의 가격을 다룰 수 없습니다.")
    last_window, factor, warning = scale_free_window(prices, window, target, scaler, extra["train_range"])
    path = forecast_recursive(model, last_window, config.horizon, device)  # (1, N) 표준화 단위
    forecast = path_to_prices(path, torch.tensor([prices[-1] * factor]), scaler, target)[0].numpy() / factor
    # 다음 거래일: 주말만 건너뜀 (공휴일은 모름)
    dates = np.busday_offset(series.dates[-1], np.arange(1, config.horizon + 1), roll="forward")

    print(f"{series.name}: 마지막 날 {series.dates[-1]} 값 {prices[-1]:.2f} "
          f"→ 다음 {config.horizon}거래일 예측")
    for day, value in zip(dates, forecast):
        print(f"  {day}  {value:10.2f}")
    if warning:
        print(f"경고: {warning}")
    result = {"source": series.name, "last_date": str(series.dates[-1]), "last_price": float(prices[-1]),
              "next_price": float(forecast[0]), "path": [float(v) for v in forecast],
              "dates": [str(day) for day in dates], "warning": warning}
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    with (out_dir / "forecast.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["date", f"predicted_{series.column}"])
        writer.writerows([str(day), f"{value:.4f}"] for day, value in zip(dates, forecast))
    history_days = min(len(prices), 4 * window)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(series.dates[-history_days:], prices[-history_days:], color="black", lw=1, label="history")
    ax.plot(np.r_[series.dates[-1:], dates], np.r_[prices[-1:], forecast], color="tab:red", marker="o",
            lw=1, label=f"{config.horizon}-day forecast")
    ax.set_title(f"{series.name}: next {config.horizon} trading days (recursive)")
    ax.set_xlabel("date")
    ax.set_ylabel(f"{series.column} (price units)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(alpha=0.3)
    ax.legend()
    viz.save_figure(fig, out_dir / "forecast.png", config.show)
    print(f"저장: {out_dir / 'prediction.json'}, {out_dir / 'forecast.csv'}, {out_dir / 'forecast.png'}")
    print("주의: 하루 앞 주가 예측은 persistence 와 거의 같습니다. 투자 판단에 쓰지 마세요.")
    return result


# %% [markdown]
# # 부록(실험) A. 기준선 옆에 — persistence, 이동평균, 모든 지표와 기술 점수

# %%
def baseline_study(config: Config, series, data: WindowedSeries, test_result: dict) -> dict:
    """시험 구간에서 모델을 기준선 옆에 놓고 지표 표·판정·그림 세 장. 난수를 쓰지 않습니다."""
    out_dir, test, dates, name = Path(config.out_dir), data.splits["test"], series.dates, config.cell.upper()
    predictions = {name: test_result["price"], **baseline_predictions(data, test, config.ma_window)}
    table = {k: forecast_metrics(v, test["true_price"], test["last_price"]) for k, v in predictions.items()}
    persistence, moving_average = table["persistence"], table[f"moving average ({config.ma_window}d)"]
    model_skill = skill(table[name]["rmse"], persistence["rmse"])
    up_days = 100 * (test["true_price"] > test["last_price"]).double().mean().item()
    print_metric_table(table, f"[4. 평가] 시험 구간 {dates[int(test['index'][0])]} ~ "
                              f"{dates[int(test['index'][-1])]} ({len(test['x'])}일), 단위: {series.column}")
    print(f"  skill vs persistence: {model_skill:+.4f} (이동평균 "
          f"{skill(moving_average['rmse'], persistence['rmse']):+.4f}); "
          f"오른 날 비율 {up_days:.1f}% (방향 정확도의 '늘 오른다' 기준)")
    print("  " + verdict(name, model_skill))
    if config.target == "close":
        print("  가격 그래프에서 예측이 실제를 거의 덮는 것처럼 보여도, 예측은 하루 밀린 어제 가격에 "
              "가깝습니다 (test_predictions.png 의 확대 그림). --target return 으로 변화 자체를 보세요.")
    test_dates = dates[test["index"].numpy()]
    plot_series_split(dates, data, f"{series.name}: chronological split", out_dir / "series_split.png",
                      config.show)
    plot_test_predictions(test_dates, test["true_price"].numpy(),
                          {k: v.numpy() for k, v in predictions.items()},
                          f"test part: skill vs persistence = {model_skill:+.3f}",
                          out_dir / "test_predictions.png", config.show)
    plot_residuals(test_dates, {name: (test_result["price"] - test["true_price"]).numpy(),
                                "persistence": (test["last_price"] - test["true_price"]).numpy()},
                   out_dir / "residuals.png", config.show)
    return {
        "test_rmse": table[name]["rmse"], "test_mae": table[name]["mae"], "test_mape": table[name]["mape"],
        "test_direction_accuracy": table[name]["direction"], "skill_vs_persistence": model_skill,
        "persistence_rmse": persistence["rmse"], "persistence_mae": persistence["mae"],
        "persistence_mape": persistence["mape"],
        "moving_average_rmse": moving_average["rmse"], "moving_average_mae": moving_average["mae"],
        "moving_average_mape": moving_average["mape"],
        "moving_average_direction_accuracy": moving_average["direction"], "test_up_day_fraction": up_days,
    }


# %% [markdown]
# # 부록(실험) B. 여러 날 앞 — 재귀 예측의 오차가 벌어지는 모습

# %%
def multistep_study(config: Config, model, series, data: WindowedSeries, device) -> dict:
    """시험 구간의 각 시작점에서 --horizon 일 앞까지 재귀 예측. 난수를 쓰지 않습니다 (eval 모드)."""
    multistep = evaluate_multistep(model, data, config.horizon, device)
    print(f"[4-2. 여러 날 앞] 재귀 예측 RMSE (1~{config.horizon}일 앞): "
          + " ".join(f"{v:.2f}" for v in multistep["model_rmse"])
          + "  | persistence: " + " ".join(f"{v:.2f}" for v in multistep["persistence_rmse"]))
    plot_multistep(series.dates, data.prices, multistep, config.horizon,
                   Path(config.out_dir) / "multistep.png", config.show)
    return {"multistep_rmse": multistep["model_rmse"],
            "multistep_persistence_rmse": multistep["persistence_rmse"]}


# %% [markdown]
# # 부록(실험) C. 점검 계열 — 배울 것이 있으면 LSTM 은 배웁니다
#
# GOOG 에서 persistence 를 못 이긴 것이 모델이 고장 나서인지, 맞힐 것이 없어서인지 가려야
# 합니다. 주기가 있는 잡음 섞인 신호에서는 창 안의 주기를 알아채면 내일을 맞힐 수 있으므로,
# 같은 모델·같은 학습 코드가 persistence 를 크게 이겨야 합니다.

# %%
def fit_quietly(model, optimizer, data: WindowedSeries, epochs: int, batch_size: int, device,
                max_batches: int | None) -> int:
    """검증 RMSE 가 가장 좋은 가중치로 끝나는 짧은 학습 (체크포인트 없이, 메모리 안에서)."""
    best_rmse, best_state, best_epoch = math.inf, None, 0
    train, val = data.splits["train"], data.splits["val"]
    for epoch in range(1, epochs + 1):
        train_one_epoch(model, optimizer, train["x"], train["y"], batch_size, epoch, device, max_batches,
                        desc=f"sanity epoch {epoch}")
        val_rmse = evaluate(model, val, data, device)["rmse"]
        if val_rmse < best_rmse:  # run 블록과 같은 규칙: 더 작아야(<) 바꿈
            best_rmse, best_state, best_epoch = val_rmse, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    return best_epoch


def run_sanity_check(config: Config, device, max_batches: int | None) -> dict:
    """점검 계열에서 같은 모델을 학습하고 시험 구간의 RMSE 를 persistence 와 비교합니다.

    자기 시드(seed + SANITY_SEED_OFFSET)로 시작하므로 앞에서 무엇을 했든(이어하기 포함) 같은 숫자.
    """
    torch.manual_seed(config.seed + SANITY_SEED_OFFSET)
    values = noisy_seasonal_series(config.sanity_length, seed=config.seed)
    data = prepare_series(values, window=config.window, target="close",  # 0 근처를 지나는 신호라 가격 목표로
                          val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    if config.smoke:
        keep_first_batch(data, config.batch_size)
    model = build_model(**forecaster_args(config, "close")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    epochs = 1 if config.smoke else config.sanity_epochs
    best_epoch = fit_quietly(model, optimizer, data, epochs, config.batch_size, device, max_batches)
    test = data.splits["test"]
    prediction = evaluate(model, test, data, device)["price"]
    model_m = forecast_metrics(prediction, test["true_price"], test["last_price"])
    persistence_m = forecast_metrics(test["last_price"], test["true_price"], test["last_price"])
    sanity_skill = skill(model_m["rmse"], persistence_m["rmse"])
    print_metric_table({config.cell.upper(): model_m, "persistence": persistence_m},
                       f"[점검 계열] 시험 구간 {len(prediction)}걸음 (최고 검증 epoch {best_epoch})")
    print("  " + verdict(config.cell.upper(), sanity_skill))

    days = np.arange(len(values))
    index = test["index"].numpy()
    curves = {config.cell.upper(): prediction.numpy(), "persistence": test["last_price"].numpy()}
    plot_test_predictions(days[index], test["true_price"].numpy(), curves,
                          f"sanity series (noisy seasonal): skill vs persistence = {sanity_skill:.2f}",
                          Path(config.out_dir) / "sanity_predictions.png", show=config.show)
    return {"sanity_rmse": model_m["rmse"], "sanity_persistence_rmse": persistence_m["rmse"],
            "sanity_skill": sanity_skill}


# %% [markdown]
# # main — 목차(table of contents). 각 줄이 위의 한 절입니다.

# %%
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    out_dir = Path(config.out_dir)
    if config.predict:
        return predict(config, device)
    max_batches = 1 if config.smoke else None  # --smoke: 학습·평가 모두 배치 하나
    epochs = min(config.epochs, 3) if config.smoke else config.epochs

    # 1. 데이터 (시간 순서 분할, 학습 구간에만 맞춘 스케일러)
    series, data = prepare_data(config)
    train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
    # 2. 모델 (직접 만든 셀 == 라이브러리 셀)
    print(f"[2. 모델] 직접 만든 LSTM·GRU 셀 == nn.LSTM·nn.GRU (최대 차이 {check_scratch_cells():.1e})")
    model_args = forecaster_args(config, config.target)
    torch.manual_seed(config.seed)  # 초기 가중치와 학습 중 창 섞기는 모두 전역 torch 난수
    model = build_model(**model_args).to(device)
    n_parameters = sum(p.numel() for p in model.parameters())  # 파라미터 수 = 모든 가중치 텐서의 원소 수 합
    print(f"  장치(device): {device} | 파라미터: {n_parameters:,}개 ({config.cell})")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    # 3. 학습 (검증 RMSE 가 작을수록 좋음; 창 길이·스케일러는 예측에 필요해 extra 에 저장)
    extra = prediction_extra(config, series, data)
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, history=history, extra=extra)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, history=history, best=math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if history.epochs_since_best("val_rmse", "min") >= config.patience:  # 기록으로 판단
                print(f"  조기 종료(early stopping): 검증 RMSE 가 {config.patience} epoch 동안 나아지지 않음")
                break
            train_loss = train_one_epoch(model, optimizer, train["x"], train["y"], config.batch_size, epoch,
                                         device, max_batches)
            val_result = evaluate(model, val, data, device)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=val_result["loss"],
                        val_rmse=val_result["rmse"])
            if val_result["rmse"] < best:  # 검증 RMSE, 작을수록 좋음 (같으면 먼저 것을 유지)
                best = val_result["rmse"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    model, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device, purpose="test")
    test_result = evaluate(model, test, data, device)  # 시험 점수는 언제나 best.pt 로

    # 4·5. 시각화, 그리고 부록 A~C (시험 지표는 A 가 기준선 옆에; 난수 없이 또는 자기 시드로)
    plot_training_history(config, history.rows, series.column)
    metrics = {**baseline_study(config, series, data, test_result), "best_val_rmse": best,
               **multistep_study(config, model, series, data, device),
               **run_sanity_check(config, device, max_batches)}

    seconds = time.perf_counter() - started
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=series.name, device=device,
                     seconds=seconds, parameters=n_parameters, metrics=metrics, headline="test_rmse")
    print(f"끝: 시험 RMSE {metrics['test_rmse']:.3f} (persistence {metrics['persistence_rmse']:.3f}), "
          f"점검 계열 skill {metrics['sanity_skill']:.2f}, {seconds:.1f}초. 결과: {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
