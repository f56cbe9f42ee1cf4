"""utils 확인: 플래그 만들기, 장치 오류, 시드 재현성, 체크포인트 왕복·원자적 쓰기, 데이터 정책."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

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
    in_notebook,
    parse_config,
    pick_device,
    run,
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


@pytest.mark.parametrize("argv", [["--epochs", "-1"], ["--batch-size", "0"], ["--lr", "0"], ["--lr", "nan"],
                                  ["--lr", "-inf"],
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
@dataclass
class CheckpointConfig(RunConfig):
    chapter: ClassVar[str] = "00_demo"
    epochs: int = 3  # 에폭 수
    hidden_size: int = 4  # 은닉 크기


def _model_and_optimizer(hidden_size: int = 4):
    model = torch.nn.Linear(hidden_size, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(3, hidden_size)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def _checkpoint_fn(config, state, generator, history, extra=None):
    model_args = {"hidden_size": config.hidden_size}
    return lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, generators=[generator], history=history,
        extra=extra or {"data": "toy (offline)"})


def test_checkpoint_round_trip_restores_everything(tmp_path):
    config = CheckpointConfig(out_dir=str(tmp_path))
    torch.manual_seed(0)
    model, optimizer, scheduler = _model_and_optimizer()
    generator = torch.Generator().manual_seed(5)
    torch.rand(3, generator=generator)
    history = training.History(tmp_path / "history.csv")
    history.log(epoch=1, train_loss=0.5)
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    set_seed(3)
    training.save_checkpoint(tmp_path / "last.pt", _checkpoint_fn(config, state, generator, history)(1, 0.75))
    expected_next = (random.random(), float(np.random.rand()), torch.rand(2).tolist(),
                     torch.rand(2, generator=generator).tolist())

    torch.manual_seed(99)
    fresh_model, fresh_optimizer, fresh_scheduler = _model_and_optimizer()
    fresh_generator = torch.Generator().manual_seed(0)
    fresh_history = training.History(tmp_path / "history.csv")
    fresh_state = {"model": fresh_model, "optimizer": fresh_optimizer, "scheduler": fresh_scheduler}
    resumed = CheckpointConfig(out_dir=str(tmp_path), resume=True, epochs=10)  # --epochs 는 바꿔도 됨
    start_epoch, best = training.resume_or_start(
        resumed, _checkpoint_fn(resumed, fresh_state, fresh_generator, fresh_history), fresh_state,
        generators=[fresh_generator], history=fresh_history, best=-1.0)
    assert (start_epoch, best) == (2, 0.75)
    assert fresh_history.rows == [{"epoch": 1, "train_loss": 0.5}]
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh_model.state_dict()[key])
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"],
                       optimizer.state_dict()["state"][0]["exp_avg"])
    # 전역 난수와 DataLoader 의 generator 도 저장 시점으로 돌아가 같은 다음 값을 냅니다
    assert (random.random(), float(np.random.rand()), torch.rand(2).tolist(),
            torch.rand(2, generator=fresh_generator).tolist()) == expected_next


def test_fresh_start_writes_epoch_zero_and_resume_without_file_says_so(tmp_path, capsys):
    config = CheckpointConfig(out_dir=str(tmp_path), resume=True)
    model, optimizer, _ = _model_and_optimizer()
    state = {"model": model, "optimizer": optimizer}
    generator = torch.Generator().manual_seed(1)
    history = training.History(tmp_path / "history.csv")
    start = training.resume_or_start(config, _checkpoint_fn(config, state, generator, history), state,
                                     generators=[generator], history=history, best=-1.0)
    assert start == (1, -1.0)
    assert "처음부터 시작합니다" in capsys.readouterr().out
    saved = training.load_checkpoint(tmp_path / "last.pt", config)
    assert saved["epoch"] == 0 and saved["model_args"] == {"hidden_size": 4}


def test_resume_refuses_other_settings_and_lists_them(tmp_path):
    config = CheckpointConfig(out_dir=str(tmp_path))
    model, optimizer, _ = _model_and_optimizer()
    state = {"model": model, "optimizer": optimizer}
    generator = torch.Generator()
    training.save_checkpoint(tmp_path / "last.pt", _checkpoint_fn(config, state, generator, None)(2, 0.5))
    changed = CheckpointConfig(out_dir=str(tmp_path), resume=True, seed=7, hidden_size=8)
    model8, optimizer8, _ = _model_and_optimizer(8)
    state8 = {"model": model8, "optimizer": optimizer8}
    with pytest.raises(UserError, match=r"hidden_size: 4 → 8.*seed: 42 → 7") as error:
        training.resume_or_start(changed, _checkpoint_fn(changed, state8, generator, None), state8,
                                 generators=[generator], best=0.0)
    assert "model_args.hidden_size" in str(error.value)
    other_data = _checkpoint_fn(CheckpointConfig(out_dir=str(tmp_path), resume=True), state, generator, None,
                                extra={"data": "MNIST (real)"})
    with pytest.raises(UserError, match="data: 'toy"):
        training.resume_or_start(CheckpointConfig(out_dir=str(tmp_path), resume=True), other_data, state,
                                 generators=[generator], best=0.0)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    config = CheckpointConfig(out_dir=str(tmp_path))
    model, optimizer, _ = _model_and_optimizer()
    checkpoint = _checkpoint_fn(config, {"model": model}, torch.Generator(), None)
    path = tmp_path / "last.pt"
    training.save_checkpoint(path, checkpoint(1, 0.1))
    good_bytes = path.read_bytes()

    def broken_save(obj, file):
        with open(file, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(OSError):
        training.save_checkpoint(path, checkpoint(2, 0.2))
    assert path.read_bytes() == good_bytes, "중단된 쓰기가 기존 체크포인트를 망가뜨렸습니다"
    assert list(tmp_path.iterdir()) == [path], "임시 파일이 남았습니다"


def test_every_kind_of_bad_checkpoint_is_one_clear_error(tmp_path):
    config = CheckpointConfig(out_dir=str(tmp_path))
    model, _, _ = _model_and_optimizer()
    good = tmp_path / "good.pt"
    training.save_checkpoint(good, _checkpoint_fn(config, {"model": model}, torch.Generator(), None)(1, 0.5))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("epoch,loss\n1,0.5\n", encoding="utf-8")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save({"model": model.state_dict()}, tmp_path / "foreign_format.pt")
    other = torch.load(good, weights_only=True)
    other["chapter"] = "03_cnn"
    torch.save(other, tmp_path / "other_chapter.pt")
    (tmp_path / "a_folder.pt").mkdir()
    cases = {"missing.pt": "없습니다", "empty.pt": "빈 파일", "text.pt": "읽을 수 없습니다",
             "truncated.pt": "읽을 수 없습니다", "foreign_format.pt": "체크포인트가 아닙니다",
             "other_chapter.pt": "03_cnn 장", "a_folder.pt": "폴더"}
    for name, words in cases.items():
        with pytest.raises(UserError, match=words):
            training.load_checkpoint(tmp_path / name, config, purpose="predict")
    assert training.load_checkpoint(good, config)["best"] == 0.5


def test_resume_with_a_bad_last_checkpoint_stops_before_main_starts(tmp_path, capsys):
    """--resume 인데 last.pt 가 빈·잘린·다른 장의 파일 → main(데이터·모델 준비)을 부르기 전에 한 줄, 코드 2.
    좋은 last.pt 나 last.pt 가 없을 때는 main 이 불림 (설정 비교는 main 안의 resume_or_start 몫)."""
    model, _, _ = _model_and_optimizer()
    good = tmp_path / "good.pt"
    training.save_checkpoint(good, _checkpoint_fn(CheckpointConfig(out_dir=str(tmp_path)), {"model": model},
                                                  torch.Generator(), None)(1, 0.5))
    other = torch.load(good, weights_only=True)
    other["chapter"] = "03_cnn"
    started = []
    main = lambda config: started.append(config.out_dir)
    for name, write in {"empty": lambda p: p.write_bytes(b""),
                        "truncated": lambda p: p.write_bytes(good.read_bytes()[:100]),
                        "other": lambda p: torch.save(other, p)}.items():
        out_dir = tmp_path / name
        out_dir.mkdir()
        write(out_dir / "last.pt")
        with pytest.raises(SystemExit) as stopped:
            run(main, CheckpointConfig, ["--resume", "--device", "cpu", "--out-dir", str(out_dir)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert stopped.value.code == 2 and len(lines) == 1 and "last.pt" in lines[0], (name, lines)
    assert started == []
    (tmp_path / "good").mkdir()
    good.rename(tmp_path / "good" / "last.pt")
    for name in ("good", "no_checkpoint_yet"):
        run(main, CheckpointConfig, ["--resume", "--device", "cpu", "--out-dir", str(tmp_path / name)])
    assert len(started) == 2


def test_load_trained_model_rebuilds_from_model_args_alone(tmp_path):
    config = CheckpointConfig(out_dir=str(tmp_path), hidden_size=6)
    model, _, _ = _model_and_optimizer(6)
    training.save_checkpoint(tmp_path / "best.pt",
                             _checkpoint_fn(config, {"model": model}, torch.Generator(), None)(1, 0.5))
    build_model = lambda hidden_size: torch.nn.Linear(hidden_size, 2)
    rebuilt, checkpoint = training.load_trained_model(tmp_path / "best.pt", build_model,
                                                      CheckpointConfig(), torch.device("cpu"))
    assert not rebuilt.training and checkpoint["extra"]["data"] == "toy (offline)"
    x = torch.randn(2, 6)
    assert torch.equal(rebuilt(x), model(x))
    wrong_build = lambda hidden_size: torch.nn.Linear(hidden_size + 1, 2)
    with pytest.raises(UserError, match="맞지 않습니다"):
        training.load_trained_model(tmp_path / "best.pt", wrong_build, CheckpointConfig(),
                                    torch.device("cpu"))


def test_history_logs_rows_and_csv(tmp_path):
    history = training.History(tmp_path / "history.csv")
    for epoch in (1, 2, 3):
        history.log(epoch=epoch, train_loss=1.0 / epoch, val_acc=0.5 + epoch / 10)
    assert history.column("epoch") == [1, 2, 3]
    lines = (tmp_path / "history.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "epoch,train_loss,val_acc" and lines[3].startswith("3,")


def test_epochs_since_best(tmp_path):
    history = training.History(tmp_path / "history.csv")
    assert history.epochs_since_best("val_loss", "min") == 0
    history.rows = [{"val_loss": v} for v in (1.0, 0.8, 0.9, 0.8, 0.85)]
    assert history.epochs_since_best("val_loss", "min") == 3  # 같은 값(0.8)은 나아진 게 아님
    assert history.epochs_since_best("val_loss", "max") == 4


def test_progress_sends_a_real_sigint_where_the_test_asks(monkeypatch):
    monkeypatch.setenv("TUTORIAL_SIGINT_AT", "epoch 2:1")
    assert list(training.progress(range(3), desc="epoch 1")) == [0, 1, 2]
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for item in training.progress(range(3), desc="epoch 2"):
            seen.append(item)
    assert seen == [0]


# --- runtime: run() ------------------------------------------------------------------------
def test_run_turns_user_errors_and_ctrl_c_into_one_line(tmp_path, capsys):
    def failing_main(config):
        raise UserError("파일이 없습니다")

    def interrupted_main(config):
        raise KeyboardInterrupt

    argv = ["--out-dir", str(tmp_path)]
    for main, code, words in ((failing_main, 2, "오류: 파일이 없습니다"), (interrupted_main, 130, "Ctrl+C")):
        with pytest.raises(SystemExit) as exit_info:
            run(main, CheckpointConfig, argv=argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == code and len(err) == 1 and words in err[0]
    assert run(lambda config: config.out_dir, CheckpointConfig, argv=argv) == str(tmp_path)
    assert not in_notebook()


def test_run_uses_chapter_out_dir_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out_dir = run(lambda config: config.out_dir, CheckpointConfig, argv=[])
    assert out_dir == str(Path("outputs") / "00_demo") and (tmp_path / out_dir).is_dir()


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


def test_history_can_continue_a_per_step_csv(tmp_path):
    history = training.History(tmp_path / "steps.csv")
    for epoch in (1, 2, 3):
        history.log(epoch=epoch, step=epoch * 10, loss=1.0 / epoch)
    resumed = training.History(tmp_path / "steps.csv", resume=True)
    assert resumed.column("epoch") == [1, 2, 3] and resumed.column("loss")[1] == pytest.approx(0.5)
    resumed.truncate(2)
    assert training.History(tmp_path / "steps.csv", resume=True).column("step") == [10, 20]


def test_test_session_sets_threads_per_worker():
    """README 의 `pytest -n 2` 를 그대로 쳐도 작업자마다 코어 수 ÷ 작업자 수 스레드 (conftest 가 정함)."""
    if "TUTORIAL_TEST_THREADS" not in os.environ:
        pytest.skip("사용자가 OMP_NUM_THREADS 를 직접 정한 세션")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    expected = max(1, (os.cpu_count() or 1) // workers)
    assert os.environ["OMP_NUM_THREADS"] == str(expected)
    assert torch.get_num_threads() == expected


def test_warn_if_trivial_fires_near_the_baseline_only(capsys):
    """대표 지표가 기준선 ± 잡음 안이면 경고 한 줄, 넘으면 조용히 (높을수록·낮을수록 좋은 지표 모두)."""
    assert training.warn_if_trivial("정확도", 0.11, 0.10, 0.03, "--epochs 를 늘리세요.")
    assert not training.warn_if_trivial("정확도", 0.95, 0.10, 0.03, "--epochs 를 늘리세요.")
    assert training.warn_if_trivial("FD", 900.0, 1000.0, 500.0, "--lr", higher_is_better=False)
    assert not training.warn_if_trivial("FD", 12.0, 1000.0, 500.0, "--lr", higher_is_better=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("경고: ") for line in lines)
    assert "--epochs" in lines[0] and "--lr" in lines[1]
