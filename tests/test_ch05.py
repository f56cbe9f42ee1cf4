"""05장: 슬라이딩 창, 스케일러, 직접 만든 LSTM/GRU 셀, 기준선 지표, CSV 읽기, 잘못된 입력, 학습 확인."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import ROOT, load_chapter, run_script

from utils.data.timeseries import load_goog, read_price_csv
from utils.runtime import UserError
from utils.synthetic import noisy_seasonal_series

SCRIPT = ROOT / "05_lstm_sequence_prediction.py"

YAHOO_CSV = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,10.0,11.0,9.5,10.5,10.4,1000
2024-01-03,10.5,11.5,10.0,11.0,10.9,1200
2024-01-04,11.0,12.0,10.5,11.5,11.4,900
"""
# Nasdaq 내보내기: 최신 날짜가 위, $ 기호, 종가 열 이름이 'Close/Last', 천 단위 쉼표
NASDAQ_CSV = """Date,Close/Last,Volume,Open,High,Low
01/04/2024,$11.50,900,$11.00,$12.00,$10.50
01/03/2024,$11.00,1200,$10.50,$11.50,$10.00
01/02/2024,"$1,010.50",1000,$10.00,$11.00,$9.50
"""


@pytest.fixture(scope="module")
def mod():
    return load_chapter("05")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def goog_csv(tmp_path, rows: int) -> str:
    """GOOG 의 마지막 rows 일을 Yahoo 형식 CSV 로."""
    series = load_goog()
    lines = ["Date,Close"] + [f"{d},{v}" for d, v in zip(series.dates[-rows:], series.values[-rows:])]
    return str(write(tmp_path, "goog.csv", "\n".join(lines) + "\n"))


# ---- 창, 분할, 스케일러 -------------------------------------------------------------------
def test_windows_shapes_and_no_look_ahead(mod):
    series = torch.arange(50, dtype=torch.float32)
    x, y = mod.make_windows(series, window=30)
    assert x.shape == (20, 30) and y.shape == (20,)
    for k in range(len(x)):
        # 창 k: series[k : k+30] → 정답은 마지막 입력의 바로 다음 값
        assert torch.equal(x[k], series[k:k + 30])
        assert y[k] == series[k + 30] == x[k, -1] + 1


@pytest.mark.parametrize("target", ["close", "return"])
def test_splits_are_chronological_and_targets_follow_inputs(mod, target):
    prices = np.linspace(10, 60, 200) + np.sin(np.arange(200))
    data = mod.prepare_series(prices, window=10, target=target, val_fraction=0.15, test_fraction=0.15)
    assert (data.train_end, data.val_end) == (140, 170)
    train, val, test = (data.splits[k] for k in ("train", "val", "test"))
    assert train["index"].max() < data.train_end <= val["index"].min()
    assert val["index"].max() < data.val_end <= test["index"].min()
    # 세 분할의 창을 합치면 위치 11..199 를 빠짐없이, 한 번씩 덮습니다 (두 목표가 같은 날을 맞힘)
    assert torch.equal(torch.cat([train["index"], val["index"], test["index"]]), torch.arange(11, 200))
    for split in (train, val, test):
        assert torch.allclose(split["true_price"], torch.from_numpy(prices[split["index"].numpy()]))
        assert torch.allclose(split["last_price"], torch.from_numpy(prices[split["index"].numpy() - 1]))
        # 표준화를 되돌리면 정답 = 그날 값, 창의 마지막 입력 = 바로 전날 값
        truth = mod.to_price(split["y"], split["last_price"], data.scaler, target)
        assert torch.allclose(truth, split["true_price"], rtol=1e-5)
        last_input = data.scaler.inverse(split["x"][:, -1].double())
        expected_last = (np.log(prices[split["index"].numpy() - 1] / prices[split["index"].numpy() - 2])
                         if target == "return" else prices[split["index"].numpy() - 1])
        assert np.allclose(last_input.numpy(), expected_last, rtol=1e-4, atol=1e-5)


def test_scaler_is_fitted_on_the_training_part_only(mod):
    prices = np.linspace(10, 60, 200)
    data = mod.prepare_series(prices, window=10, target="close", val_fraction=0.15, test_fraction=0.15)
    assert math.isclose(data.scaler.mean, prices[:140].mean())
    assert math.isclose(data.scaler.std, prices[:140].std())
    # 미래(검증·시험)를 바꿔도 스케일러와 학습 입력은 그대로: 누수 없음
    changed = prices.copy()
    changed[140:] *= 100
    other = mod.prepare_series(changed, window=10, target="close", val_fraction=0.15, test_fraction=0.15)
    assert (other.scaler.mean, other.scaler.std) == (data.scaler.mean, data.scaler.std)
    assert torch.equal(other.splits["train"]["x"], data.splits["train"]["x"])
    returns = mod.prepare_series(prices, window=10, target="return", val_fraction=0.15, test_fraction=0.15)
    assert math.isclose(returns.scaler.mean, np.diff(np.log(prices[:140])).mean())


# ---- 직접 만든 셀 대 PyTorch ---------------------------------------------------------------
def test_scratch_lstm_cell_matches_nn_lstm(mod):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(input_size=3, hidden_size=5, batch_first=True)
    cell = mod.ScratchLSTMCell(3, 5)
    mod.copy_lstm_weights(lstm, cell)
    x = torch.randn(2, 7, 3)
    with torch.no_grad():
        ours, (h, c) = mod.run_scratch_lstm(cell, x)
        theirs, (h_ref, c_ref) = lstm(x)
    assert ours.shape == theirs.shape == (2, 7, 5)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(h, h_ref[0], atol=1e-6) and torch.allclose(c, c_ref[0], atol=1e-6)
    # 한 단계를 식 그대로 손으로: f, i, ĉ, o 게이트 (nn.LSTM 의 쌓는 순서는 i, f, g, o)
    h0, c0, x0 = torch.zeros(2, 5), torch.zeros(2, 5), x[:, 0]
    gates = x0 @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h0 @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
    i, f, g, o = gates.chunk(4, dim=1)
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h1 = torch.sigmoid(o) * torch.tanh(c1)
    assert torch.allclose(ours[:, 0], h1.detach(), atol=1e-6)


def test_scratch_gru_cell_matches_nn_gru(mod):
    torch.manual_seed(1)
    gru = torch.nn.GRU(input_size=2, hidden_size=4, batch_first=True)
    cell = mod.ScratchGRUCell(2, 4)
    mod.copy_gru_weights(gru, cell)
    x = torch.randn(3, 6, 2)
    with torch.no_grad():
        h = torch.zeros(3, 4)
        outputs = []
        for t in range(6):
            h = cell(x[:, t], h)
            outputs.append(h)
        reference, _ = gru(x)
    assert torch.allclose(torch.stack(outputs, dim=1), reference, atol=1e-6)
    assert mod.check_scratch_cells() < 1e-5


# ---- 기준선과 지표 ------------------------------------------------------------------------
def test_persistence_metrics_on_a_toy_series_by_hand(mod):
    prices = np.array([10.0, 12.0, 11.0, 15.0, 14.0])
    data = mod.prepare_series(prices, window=1, target="close", val_fraction=0.2, test_fraction=0.2)
    # window=1 이면 정답 위치 2..4: 전체를 한 분할처럼 보려고 직접 모읍니다
    split = {k: torch.cat([data.splits[s][k] for s in ("train", "val", "test")])
             for k in ("index", "last_price", "true_price")}
    assert split["index"].tolist() == [2, 3, 4]
    baselines = mod.baseline_predictions(data, split, ma_window=2)
    persistence = baselines["persistence"]
    assert persistence.tolist() == [12.0, 11.0, 15.0]  # 내일 = 오늘
    assert baselines["moving average (2d)"].tolist() == [11.0, 11.5, 13.0]  # (10+12)/2, (12+11)/2, (11+15)/2
    m = mod.forecast_metrics(persistence, split["true_price"], split["last_price"])
    errors = np.array([12 - 11, 11 - 15, 15 - 14.0])  # 예측 − 실제 = 1, −4, 1
    assert math.isclose(m["rmse"], math.sqrt(18 / 3))
    assert math.isclose(m["mae"], 2.0)
    assert math.isclose(m["mape"], 100 * np.mean(np.abs(errors) / np.array([11, 15, 14.0])))
    assert m["direction"] is None  # persistence 는 방향을 예측하지 않음
    # 이동평균: 예측 변화 부호 (−, +, −) 대 실제 (−, +, −) → 100%
    ma = mod.forecast_metrics(baselines["moving average (2d)"], split["true_price"], split["last_price"])
    assert ma["direction"] == 100.0
    assert math.isclose(mod.skill(1.5, 2.0), 0.25) and mod.skill(2.0, 2.0) == 0.0
    assert "졌습니다" in mod.verdict("LSTM", -0.0001)
    assert "이겼습니다" in mod.verdict("LSTM", 0.5)


class PlusOne(torch.nn.Module):
    """다음 값 = 창의 마지막 값 + 1 인 가짜 모델 (재귀 예측 확인용)."""

    def forward(self, x):
        return x[:, -1] + 1


def test_recursive_forecast_feeds_predictions_back(mod):
    windows = torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    path = mod.forecast_recursive(PlusOne(), windows, steps=4, device="cpu")
    assert path.tolist() == [[3.0, 4.0, 5.0, 6.0], [6.0, 7.0, 8.0, 9.0]]
    # 수익률 경로는 누적 곱: p_{t+h} = p_{t−1}·exp(r_1 + … + r_h)
    scaler = mod.Scaler(0.0, 1.0)
    prices = mod.path_to_prices(torch.full((1, 3), 0.1), torch.tensor([100.0]), scaler, "return")
    assert torch.allclose(prices, 100 * torch.exp(torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)))


# ---- 데이터 읽기 ---------------------------------------------------------------------------
def test_goog_sample_data():
    series = load_goog()
    assert len(series.values) == 1047
    assert str(series.dates[0]) == "2004-08-19" and str(series.dates[-1]) == "2008-10-14"
    assert series.values[0] == pytest.approx(100.34)
    assert (np.diff(series.dates.astype(np.int64)) > 0).all()
    assert "GOOG" in series.name and "matplotlib" in series.name
    assert load_goog("Adj Close").column == "adj_close"


def test_csv_both_header_variants(tmp_path):
    yahoo = read_price_csv(write(tmp_path, "y.csv", YAHOO_CSV), "Close")
    assert yahoo.column == "Close" and yahoo.values.tolist() == [10.5, 11.0, 11.5]
    assert read_price_csv(tmp_path / "y.csv", "adj close").values.tolist() == [10.4, 10.9, 11.4]
    nasdaq = read_price_csv(write(tmp_path, "n.csv", NASDAQ_CSV), "Close")
    assert nasdaq.column == "Close/Last"
    assert [str(d) for d in nasdaq.dates] == ["2024-01-02", "2024-01-03", "2024-01-04"]  # 날짜순으로 뒤집음
    assert nasdaq.values.tolist() == [1010.5, 11.0, 11.5]  # $ 와 쉼표 제거


def test_unsorted_dates_are_sorted_with_a_note(tmp_path, capsys):
    path = write(tmp_path, "s.csv", "Date,Close\n2024-01-03,1\n2024-01-02,2\n2024-01-05,3\n")
    series = read_price_csv(path, "Close")
    assert series.values.tolist() == [2.0, 1.0, 3.0]
    assert "정렬했습니다" in capsys.readouterr().out


@pytest.mark.parametrize("name, text, column, expected", [
    ("nocol.csv", YAHOO_CSV, "Price", "있는 열: Date, Open, High, Low, Close, Adj Close, Volume"),
    ("short.csv", YAHOO_CSV, "Close", "행이 3개뿐"),
    ("text.csv", "Date,Close\n2024-01-02,1\n2024-01-03,abc\n", "Close", "3번째 줄 'Close' 값 'abc'"),
    ("dup.csv", "Date,Close\n2024-01-02,1\n2024-01-02,2\n", "Close", "여러 번"),
    ("empty.csv", "", "Close", "비어 있습니다"),
])
def test_bad_csv_gives_one_clear_error(mod, tmp_path, name, text, column, expected):
    path = write(tmp_path, name, text)
    config = mod.Config(csv=str(path), column=column, out_dir=str(tmp_path / "out"), device="cpu")
    with pytest.raises(UserError, match=re.escape(expected)):
        mod.main(config)


@pytest.mark.parametrize("args, expected", [
    (["--column", "Price"], "있는 열"),
    (["--column", "Close", "--window", "5"], "여러 번"),
])
def test_bad_csv_from_the_command_line(tmp_path, args, expected):
    text = YAHOO_CSV if "Price" in args else "Date,Close\n2024-01-02,1\n2024-01-02,2\n"
    path = write(tmp_path, "bad.csv", text)
    result = run_script(SCRIPT, "--csv", str(path), "--out-dir", str(tmp_path / "out"), *args, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("오류:") and expected in result.stderr
    assert result.stderr.strip().count("\n") == 0  # 한 줄, traceback 없음


def test_sanity_series_is_deterministic():
    a = noisy_seasonal_series(300, seed=3)
    assert a.shape == (300,) and np.array_equal(a, noisy_seasonal_series(300, seed=3))
    assert not np.array_equal(a, noisy_seasonal_series(300, seed=4))
    assert (a > 0).all()


# ---- 실행: smoke, 재현성, 추론 -------------------------------------------------------------
# 모델 플래그를 기본값과 다르게 학습: --predict 가 플래그를 되풀이하지 않고 best.pt 만으로 다시 만드는지
# lr=0.05: 검증 RMSE 가 epoch 2 에서 가장 작고 3 에서 다시 커져, best.pt 가 마지막 epoch 과 다릅니다.
SMOKE = dict(smoke=True, data="offline", device="cpu", horizon=2, cell="gru", hidden_size=8, num_layers=2,
             dropout=0.1, lr=0.05)


@pytest.fixture(scope="module")
def smoke_run(mod, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ch05_smoke")
    return out_dir, mod.main(mod.Config(**SMOKE, out_dir=str(out_dir)))


def test_smoke_run_writes_everything_and_is_deterministic(mod, smoke_run, tmp_path):
    out_dir, metrics = smoke_run
    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert record["headline"]["name"] == "test_rmse"
    assert "GOOG" in record["data"]
    assert len(metrics["multistep_rmse"]) == SMOKE["horizon"]
    for name in ("series_split.png", "test_predictions.png", "residuals.png", "multistep.png",
                 "sanity_predictions.png", "history.png", "best.pt", "last.pt"):
        assert (out_dir / name).is_file(), name
    assert mod.main(mod.Config(**SMOKE, out_dir=str(tmp_path))) == metrics  # 같은 seed, CPU → 같은 숫자


def test_test_rmse_comes_from_best_pt(mod, smoke_run):
    """best.pt = 검증 RMSE 가 처음으로 가장 작았던 epoch, 시험 RMSE 는 그 가중치로."""
    out_dir, metrics = smoke_run
    config = mod.Config(**SMOKE, out_dir=str(out_dir))
    model, checkpoint = mod.training.load_trained_model(out_dir / "best.pt", mod.build_model, config, "cpu",
                                                        "test")
    history = torch.load(out_dir / "last.pt", weights_only=True)["history"]  # 모든 epoch 의 기록
    val_rmse = [row["val_rmse"] for row in history]
    assert checkpoint["epoch"] == 1 + val_rmse.index(min(val_rmse)) and checkpoint["best"] == min(val_rmse)
    assert checkpoint["epoch"] < len(val_rmse)  # 이 설정에서는 best ≠ 마지막 epoch: 둘을 구별하는 시험
    _, data = mod.prepare_data(config)
    assert mod.evaluate(model, data.splits["test"], data, "cpu")["rmse"] == metrics["test_rmse"]


def predict(mod, out_dir, csv_path) -> dict:
    """기본 플래그(lstm, H=32, 1층)로 --predict: 모델 모양은 best.pt 에서 와야 합니다."""
    result = mod.main(mod.Config(predict=str(csv_path), device="cpu", out_dir=str(out_dir)))
    assert json.loads((out_dir / "prediction.json").read_text(encoding="utf-8")) == result
    return result


def test_predict_needs_no_model_flags_and_writes_prediction_json(mod, smoke_run, tmp_path):
    out_dir, _ = smoke_run
    csv_path = goog_csv(tmp_path, 60)
    result = predict(mod, out_dir, csv_path)
    assert set(result) >= {"last_price", "next_price", "path", "warning"}
    assert result["warning"] is None  # 2008-10 의 GOOG 는 학습 구간 가격 범위 안
    assert result["last_price"] == load_goog().values[-1] and result["next_price"] == result["path"][0]
    assert len(result["path"]) == mod.Config().horizon
    # 같은 값을 best.pt 로 직접: 모델 재구성 + 저장된 스케일러 + 재귀 예측
    saved = torch.load(out_dir / "best.pt", weights_only=True)
    model = mod.build_model(**saved["model_args"])
    model.load_state_dict(saved["model"])
    scaler = mod.Scaler(saved["extra"]["scaler_mean"], saved["extra"]["scaler_std"])
    window = torch.tensor(scaler.transform(load_goog().values[-30:]), dtype=torch.float32)[None]
    expected = scaler.inverse(mod.forecast_recursive(model, window, 5, "cpu").double())[0]
    assert np.allclose(result["path"], expected.numpy(), rtol=1e-6)
    assert (out_dir / "forecast.csv").read_text(encoding="utf-8").count("\n") == 1 + 5


def scaled_goog_csv(tmp_path, factor: float) -> str:
    series = load_goog()
    lines = ["Date,Close"] + [f"{d},{v * factor}" for d, v in zip(series.dates[-60:], series.values[-60:])]
    return str(write(tmp_path, f"goog_x{factor}.csv", "\n".join(lines) + "\n"))


def test_predict_out_of_range_prices_is_scale_free_and_warns(mod, smoke_run, tmp_path):
    """이슈 9 의 6: 학습 가격 범위 밖(10분의 1, 100분의 1 가격)이면 경고 한 줄 + 변화율이 가격 단위와 무관."""
    out_dir, _ = smoke_run
    tenth, hundredth = (predict(mod, out_dir, scaled_goog_csv(tmp_path, f)) for f in (0.1, 0.01))
    for result in (tenth, hundredth):
        assert re.search(r"학습 구간 가격 100\.01~555\.00", result["warning"]), result["warning"]
        assert result["warning"].count("\n") == 0
    assert f"{min(load_goog().values[-30:]) * 0.1:.2f}" in tenth["warning"]  # 입력 범위도 이름
    assert np.allclose(np.array(tenth["path"]) / tenth["last_price"],
                       np.array(hundredth["path"]) / hundredth["last_price"], rtol=1e-9)


@pytest.fixture(scope="module")
def trained_goog(mod, tmp_path_factory):
    """짧게(5 epoch) 학습한 GOOG 모델: 하루 변화가 거의 0 인 persistence 에 가까운 모델."""
    out_dir = tmp_path_factory.mktemp("ch05_trained")
    mod.main(mod.Config(epochs=5, sanity_epochs=1, data="offline", device="cpu", out_dir=str(out_dir)))
    return out_dir


@pytest.mark.slow
def test_steady_62_dollar_stock_is_not_forecast_to_jump(mod, trained_goog, tmp_path):
    """이슈 9 의 6: GOOG(수백 달러)로 학습한 모델이 잔잔한 62달러 주식에 '한 주에 +11%'를 내면 안 됨."""
    dates = load_goog().dates[-60:]
    lines = ["Date,Close"] + [f"{d},{62 + 0.1 * ((k % 3) - 1):.2f}" for k, d in enumerate(dates)]
    result = predict(mod, trained_goog, write(tmp_path, "steady.csv", "\n".join(lines) + "\n"))
    assert abs(result["path"][-1] / result["last_price"] - 1) < 0.02, result["path"]
    assert "62" in result["warning"]


def test_resume_with_another_window_is_refused_with_the_difference(mod, smoke_run):
    out_dir, _ = smoke_run
    with pytest.raises(UserError, match="window: 30 → 20"):
        mod.main(mod.Config(**{**SMOKE, "window": 20, "ma_window": 5}, resume=True, out_dir=str(out_dir)))


def test_predict_folder_or_missing_checkpoint(mod, smoke_run, tmp_path):
    out_dir, _ = smoke_run
    with pytest.raises(UserError, match="폴더입니다.*파일"):
        mod.main(mod.Config(predict=str(tmp_path), device="cpu", out_dir=str(out_dir)))
    with pytest.raises(UserError, match="best.pt 가 없습니다"):  # 모델이 먼저: 입력이 무엇이든
        mod.main(mod.Config(predict=str(tmp_path), device="cpu", out_dir=str(tmp_path)))


# ---- 학습 확인 ------------------------------------------------------------------------------
@pytest.mark.slow
def test_lstm_beats_persistence_on_the_sanity_series(mod, tmp_path):
    """짧은 학습(5 epoch, 30걸음)으로도 점검 계열에서 persistence 보다 RMSE 가 40% 이상 작아야 합니다."""
    config = mod.Config(sanity_epochs=5, lr=1e-2, device="cpu", out_dir=str(tmp_path))
    # 학습 전 모델은 거의 persistence (residual 출력): 배운 것이 없으면 이 검사를 통과할 수 없음
    torch.manual_seed(0)
    data = mod.prepare_series(noisy_seasonal_series(config.sanity_length, seed=config.seed),
                              window=config.window, target="close", val_fraction=0.15, test_fraction=0.15)
    untrained = mod.evaluate(mod.build_model(**mod.forecaster_args(config, "close")), data.splits["test"],
                             data, "cpu")
    persistence = mod.rmse(data.splits["test"]["last_price"], data.splits["test"]["true_price"])
    assert mod.skill(untrained["rmse"], persistence) < 0.2

    result = mod.run_sanity_check(config, torch.device("cpu"), None)
    assert result["sanity_skill"] >= 0.40, result
