"""utils 확인: 플래그 만들기, 장치 오류, 시드 재현성, 체크포인트 왕복·원자적 쓰기, 데이터 정책."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from utils import training
from utils.data import common, vision
from utils.runtime import (
    RunConfig,
    UserError,
    build_parser,
    parse_config,
    pick_device,
    set_seed,
    write_run_record,
)


@dataclass
class ToyConfig(RunConfig):
    epochs: int = 3  # 에폭 수
    batch_size: int = 32  # 배치 크기
    lr: float = 0.01  # 학습률
    cell: Literal["rnn", "lstm"] = "lstm"  # 셀 종류
    bidirectional: bool = False  # 양방향


# --- runtime: 플래그 -----------------------------------------------------------------------
def test_fields_become_kebab_case_flags():
    config = parse_config(ToyConfig, ["--batch-size", "8", "--lr", "0.5", "--cell", "rnn",
                                      "--bidirectional", "--device", "cpu", "--out-dir", "x"])
    assert (config.batch_size, config.lr, config.cell, config.bidirectional) == (8, 0.5, "rnn", True)
    assert config.device == "cpu" and config.out_dir == "x" and config.epochs == 3
    assert parse_config(ToyConfig, ["--no-bidirectional"]).bidirectional is False


def test_help_text_comes_from_field_comments():
    help_text = build_parser(ToyConfig).format_help()
    assert "--batch-size" in help_text and "배치 크기" in help_text
    assert "--smoke" in help_text and "--no-smoke" in help_text
    assert "cuda → mps → cpu" in help_text  # RunConfig 의 주석


@pytest.mark.parametrize("argv", [["--epochs", "-1"], ["--batch-size", "0"], ["--lr", "0"],
                                  ["--cell", "gru"], ["--device", "tpu"], ["--no-such-flag"],
                                  ["--epochs", "abc"]])
def test_bad_flags_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(ToyConfig, argv)
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("오류: ")  # 한 줄, traceback 없음


def test_post_init_value_error_becomes_usage_error(capsys):
    @dataclass
    class Checked(RunConfig):
        window: int = 30  # 창 크기

        def __post_init__(self):
            if self.window < 2:
                raise ValueError("--window 는 2 이상")

    with pytest.raises(SystemExit):
        parse_config(Checked, ["--window", "1"])
    assert "--window 는 2 이상" in capsys.readouterr().err


# --- runtime: 장치, 시드, 실행 기록 --------------------------------------------------------------
def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError):
        pick_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="GPU 가 있으면 cuda 요청이 성공함")
def test_cuda_without_gpu_is_one_clear_error():
    with pytest.raises(UserError, match="CUDA GPU를 찾을 수 없습니다"):
        pick_device("cuda")


def test_set_seed_reproduces_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), torch.randn(3).tolist()

    set_seed(7)
    first = draw()
    set_seed(7)
    assert draw() == first
    set_seed(8)
    assert draw() != first


def test_run_record(tmp_path):
    path = write_run_record(tmp_path, script="/x/01_demo.py", config=ToyConfig(), data="toy (offline)",
                            device=torch.device("cpu"), seconds=1.234, parameters=10,
                            metrics={"accuracy": torch.tensor(0.5), "table": np.arange(2)},
                            headline="accuracy")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["script"] == "01_demo.py" and record["headline"] == {"name": "accuracy", "value": 0.5}
    assert record["metrics"]["table"] == [0, 1] and record["config"]["batch_size"] == 32
    with pytest.raises(KeyError):
        write_run_record(tmp_path, script="x.py", config=ToyConfig(), data="", device=torch.device("cpu"),
                         seconds=0, parameters=0, metrics={"a": 1}, headline="missing")


# --- training: 체크포인트 -------------------------------------------------------------------
def _model_and_optimizer():
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def test_checkpoint_round_trip_restores_everything(tmp_path):
    torch.manual_seed(0)
    model, optimizer, scheduler = _model_and_optimizer()
    set_seed(3)
    training.save_checkpoint(tmp_path / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler,
                             epoch=4, best_metric=0.75, extra={"vocab": ["<pad>", "a"]})
    expected_next = (random.random(), float(np.random.rand()), torch.rand(2).tolist())

    torch.manual_seed(99)
    fresh_model, fresh_optimizer, fresh_scheduler = _model_and_optimizer()
    state = training.load_checkpoint(tmp_path / "last.pt", model=fresh_model, optimizer=fresh_optimizer,
                                     scheduler=fresh_scheduler)
    assert state == {"epoch": 4, "best_metric": 0.75, "extra": {"vocab": ["<pad>", "a"]}}
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh_model.state_dict()[key])
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"],
                       optimizer.state_dict()["state"][0]["exp_avg"])
    # 난수 상태도 저장 시점으로 돌아가 같은 다음 값을 냅니다 (이어하기가 끊김 없는 이유)
    assert (random.random(), float(np.random.rand()), torch.rand(2).tolist()) == expected_next


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model, optimizer, _ = _model_and_optimizer()
    path = tmp_path / "last.pt"
    training.save_checkpoint(path, model=model, epoch=1, best_metric=0.1)
    good_bytes = path.read_bytes()

    def broken_save(obj, file):
        with open(file, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(OSError):
        training.save_checkpoint(path, model=model, epoch=2, best_metric=0.2)
    assert path.read_bytes() == good_bytes, "중단된 쓰기가 기존 체크포인트를 망가뜨렸습니다"
    assert list(tmp_path.iterdir()) == [path], "임시 파일이 남았습니다"


def test_missing_or_broken_checkpoint_is_a_clear_error(tmp_path):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="없습니다"):
        training.load_checkpoint(tmp_path / "nothing.pt", model=model)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="읽을 수 없습니다"):
        training.load_checkpoint(tmp_path / "broken.pt", model=model)
    training.save_checkpoint(tmp_path / "other.pt", model=torch.nn.Linear(3, 3), epoch=1, best_metric=0)
    with pytest.raises(UserError, match="읽을 수 없습니다"):
        training.load_checkpoint(tmp_path / "other.pt", model=model)


def test_checkpoint_extra_reads_settings_or_fails_clearly(tmp_path):
    training.save_checkpoint(tmp_path / "best.pt", model=torch.nn.Linear(2, 2), epoch=1, best_metric=0.5,
                             extra={"hidden_size": 64, "classes": ["a", "b"]})
    assert training.checkpoint_extra(tmp_path / "best.pt") == {"hidden_size": 64, "classes": ["a", "b"]}
    with pytest.raises(UserError, match="없습니다"):
        training.checkpoint_extra(tmp_path / "missing.pt")
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="읽을 수 없습니다"):
        training.checkpoint_extra(tmp_path / "broken.pt")


def test_save_on_interrupt_saves_and_exits_cleanly(tmp_path, capsys):
    saved = []
    with pytest.raises(SystemExit) as exit_info:
        with training.save_on_interrupt(lambda: saved.append(True), tmp_path):
            raise KeyboardInterrupt
    assert saved == [True] and exit_info.value.code == 130
    assert "--resume" in capsys.readouterr().out


def test_history_resume_and_truncate(tmp_path):
    history = training.History(tmp_path / "history.csv")
    for epoch in (1, 2, 3):
        history.log(epoch=epoch, train_loss=1.0 / epoch, val_acc=0.5 + epoch / 10)
    resumed = training.History(tmp_path / "history.csv", resume=True)
    assert resumed.column("epoch") == [1, 2, 3] and resumed.column("val_acc")[1] == pytest.approx(0.7)
    resumed.truncate(2)
    assert training.History(tmp_path / "history.csv", resume=True).column("epoch") == [1, 2]


def test_early_stopping():
    stopper = training.EarlyStopping(patience=2, mode="min")
    assert [stopper.step(v) for v in (1.0, 0.8, 0.9)] == [True, True, False]
    assert not stopper.should_stop
    stopper.step(0.85)
    assert stopper.should_stop
    restored = training.EarlyStopping(patience=2, mode="min")
    restored.load_state_dict(stopper.state_dict())
    assert restored.best == 0.8 and restored.should_stop


def test_nan_loss_names_the_step():
    training.check_finite(torch.tensor(1.0), epoch=1, step=0)
    with pytest.raises(UserError, match=r"epoch 3, 배치 17"):
        training.check_finite(torch.tensor(float("nan")), epoch=3, step=17)


# --- data: 정책과 불러오기 ------------------------------------------------------------------
def test_data_policy_without_network(tmp_path, monkeypatch, capsys):
    """파일이 없고 내려받기가 실패하면: auto → 대체 데이터 + 한 줄, real → 폴더와 주소를 말하는 오류."""
    monkeypatch.setattr(vision, "try_download", lambda fn: (None, "network unreachable"))
    data = vision.load_mnist_like("mnist", "auto", str(tmp_path), smoke=False, seed=0)
    assert data.name == "sklearn digits (offline fallback)"
    assert "sklearn digits" in capsys.readouterr().out
    with pytest.raises(UserError) as error:
        vision.load_mnist_like("fashion", "real", str(tmp_path), smoke=False, seed=0)
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "http" in message
    assert not common.wants_real_data("offline", smoke=False) and not common.wants_real_data("auto", True)


def test_try_download_restores_timeout_and_reports_reason():
    import socket

    before = socket.getdefaulttimeout()

    def failing():
        assert socket.getdefaulttimeout() == common.DOWNLOAD_TIMEOUT_SECONDS
        raise OSError("Name or service not known")

    assert common.try_download(failing) == (None, "Name or service not known")
    assert socket.getdefaulttimeout() == before


def test_sklearn_digits_look_like_mnist():
    data = vision.sklearn_digits_28(seed=0)
    assert data.x_train.shape[1:] == (1, 28, 28) and len(data.x_train) + len(data.x_test) == 1797
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    background = vision.normalize(torch.tensor(0.0))
    assert torch.allclose(data.x_train[:, :, :4, :], background)  # MNIST 처럼 4픽셀 빈 여백
    assert torch.equal(vision.sklearn_digits_28(seed=0).y_test, data.y_test)  # 결정적
    assert sorted(data.y_test.unique().tolist()) == list(range(10))


@pytest.mark.skipif(not (SHARED_DATA / "mnist" / "MNIST" / "raw").is_dir(), reason="../shared/data 없음")
def test_real_mnist_from_shared_data():
    data = vision.load_mnist_like("mnist", "real", str(SHARED_DATA / "mnist"), smoke=False, seed=0)
    assert data.name == "MNIST (real)"
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert abs(float(data.x_train.mean())) < 0.01 and abs(float(data.x_train.std()) - 1) < 0.01


def test_read_image_as_mnist_handles_any_size_and_colour(tmp_path):
    canvas = np.full((150, 220, 3), (230, 240, 250), dtype=np.uint8)  # 밝은 종이
    cv2.putText(canvas, "7", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 4, (20, 20, 90), 12)  # 어두운 펜
    cv2.imwrite(str(tmp_path / "seven.jpg"), canvas)
    image = vision.read_image_as_mnist(tmp_path / "seven.jpg")
    assert image.shape == (1, 1, 28, 28)
    pixels = image[0, 0] * vision.MNIST_STD + vision.MNIST_MEAN  # 정규화 되돌리기 → [0, 1]
    assert pixels[:3].max() < 0.05 and pixels.max() > 0.9  # 검은 배경, 흰 글씨
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    center = ((ys * pixels).sum() / pixels.sum(), (xs * pixels).sum() / pixels.sum())
    assert abs(center[0] - 14) < 1.5 and abs(center[1] - 14) < 1.5  # 질량 중심이 가운데

    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="이미지로 읽을 수 없습니다"):
        vision.read_image_as_mnist(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="없습니다"):
        vision.read_image_as_mnist(tmp_path / "missing.png")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((20, 20), 255, dtype=np.uint8))
    with pytest.raises(UserError, match="글씨를 찾지 못했습니다"):
        vision.read_image_as_mnist(tmp_path / "blank.png")
