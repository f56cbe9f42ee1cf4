"""09장 U-Net: 모양, 전치 합성곱, 지표, 폴더 데이터, 잘못된 입력, 짧은 학습이 '전부 배경'을 이기는지."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, load_chapter, run_script
from PIL import Image
from sklearn.metrics import f1_score, jaccard_score, roc_auc_score

from utils.data.segmentation import (
    NativeData,
    load_mask_folder,
    load_segmentation_data,
    make_shapes,
    pair_files,
    read_mask,
)
from utils.runtime import UserError

SCRIPT = ROOT / "09_unet_segmentation.py"


@pytest.fixture(scope="module")
def ch09():
    return load_chapter("09")


# --- 모델 모양 ---------------------------------------------------------------
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("height,width", [(64, 64), (37, 50), (16, 16), (20, 33), (5, 7)])
def test_output_shape_equals_input_shape(ch09, skip, height, width):
    """16 의 배수가 아닌 크기도 패딩 → 자르기로 입력과 같은 H, W 의 로짓."""
    model = ch09.build_model(width=4, depth=4, skip=skip).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, 1, height, width)


def test_padding_does_not_shift_the_image(ch09):
    """패딩은 오른쪽·아래에만 하고 그만큼 잘라야 함: 크기가 달라도 왼쪽 위 예측은 같은 자리에 있어야 함.

    (가운데나 왼쪽·위에 패딩하고 자르는 위치를 안 바꾸면 예측이 몇 픽셀 밀립니다.)
    """
    torch.manual_seed(0)
    model = ch09.build_model(width=4, depth=2).eval()
    x = torch.randn(1, 3, 30, 30)
    with torch.no_grad():
        full = model(x)
        cropped = model(x[..., :28, :28])  # 28 → 32 로 패딩
    # 경계에서 먼 안쪽(수용 영역이 패딩에 닿지 않는 곳)은 같아야 함: 위치가 밀리지 않았다는 뜻
    assert torch.allclose(full[..., :8, :8], cropped[..., :8, :8], atol=1e-5)


@pytest.mark.parametrize("width", [4, 64])
def test_skip_concatenation_doubles_channels(ch09, width):
    """이어 붙인 직후 채널 = 업샘플 채널 × 2 (강의: 64 + 64 → 128), 그 뒤 double conv 가 반으로."""
    shapes = dict(ch09.trace_shapes(ch09.build_model(width=width, depth=4), size=32))
    assert shapes["up4 concat"] == (1, 2 * width, 32, 32)  # 마지막 Up: w + w → 2w
    assert shapes["up4"] == (1, width, 32, 32)
    for level in range(1, 5):
        assert shapes[f"up{level} concat"][1] == 2 * shapes[f"up{level}"][1]
    assert shapes["down4"] == (1, 16 * width, 2, 2)  # 병목: 1/16 크기, 16w 채널
    no_skip = dict(ch09.trace_shapes(ch09.build_model(width=width, depth=4, skip=False), size=32))
    assert no_skip["up4 concat"] == (1, width, 32, 32)  # 이어 붙이지 않으면 그대로


# --- 전치 합성곱 ----------------------------------------------------------------
def test_transposed_conv_course_example_and_library(ch09):
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert torch.equal(ch09.transposed_conv2d_by_hand(x, x), expected)
    torch.manual_seed(0)
    for stride in (1, 2, 3):
        x, kernel = torch.randn(3, 4), torch.randn(2, 3)
        library = F.conv_transpose2d(x[None, None], kernel[None, None], stride=stride)[0, 0]
        assert torch.allclose(ch09.transposed_conv2d_by_hand(x, kernel, stride), library, atol=1e-6)


@pytest.mark.parametrize("size,kernel,stride,padding,output_padding",
                         [(2, 2, 1, 0, 0), (4, 2, 2, 0, 0), (4, 3, 2, 1, 0), (4, 3, 2, 1, 1),
                          (5, 4, 3, 1, 2)])
def test_transposed_conv_output_size_formula(ch09, size, kernel, stride, padding, output_padding):
    layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding,
                                     output_padding=output_padding)
    actual = layer(torch.zeros(1, 1, size, size)).shape[-1]
    assert ch09.transposed_conv_output_size(size, kernel, stride, padding, output_padding) == actual


# --- 손실과 지표 ----------------------------------------------------------------
def test_iou_dice_accuracy_on_hand_made_masks(ch09):
    truth = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    truth[0, :, 1:3, 1:3] = True  # 4 픽셀
    truth[1, :, 0, :] = True  # 4 픽셀
    predicted = torch.zeros_like(truth)
    predicted[0, :, 1:3, 1:4] = True  # 4 맞고 2 틀림 → IoU 4/6, Dice 8/10
    predicted[1, :, 0, :2] = True  # 2 맞고 2 놓침 → IoU 2/4, Dice 4/6
    counts = ch09.confusion_counts(predicted, truth)
    assert counts.tolist() == [[4, 2, 0, 10], [2, 0, 2, 12]]
    per_image = ch09.scores_from_counts(counts)
    assert torch.allclose(per_image["iou"], torch.tensor([4 / 6, 2 / 4], dtype=torch.float64))
    assert torch.allclose(per_image["dice"], torch.tensor([8 / 10, 4 / 6], dtype=torch.float64))
    assert torch.allclose(per_image["pixel_accuracy"], torch.tensor([14 / 16, 14 / 16], dtype=torch.float64))
    dataset = ch09.scores_from_counts(counts.sum(dim=0))  # 6 / (6+2+2): 이미지 평균 (4/6 + 1/2)/2 와 다름
    assert dataset["iou"].item() == pytest.approx(6 / 10)
    assert per_image["iou"].mean().item() == pytest.approx((4 / 6 + 2 / 4) / 2)
    # 참조: scikit-learn 의 Jaccard(= IoU), F1(= Dice) 을 모든 픽셀에 대해 (데이터 전체)
    y_true, y_pred = truth.flatten().numpy(), predicted.flatten().numpy()
    assert dataset["iou"].item() == pytest.approx(jaccard_score(y_true, y_pred))
    assert dataset["dice"].item() == pytest.approx(f1_score(y_true, y_pred))
    for i in range(2):  # 이미지마다도 같은 참조와
        reference = jaccard_score(truth[i].flatten(), predicted[i].flatten())
        assert per_image["iou"][i].item() == pytest.approx(reference)


def test_empty_masks_count_as_perfect(ch09):
    """전경도 예측도 없는 이미지: IoU = Dice = 1 (0/0 이 아님), 전경을 놓치면 0."""
    empty = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    scores = ch09.scores_from_counts(ch09.confusion_counts(empty, empty))
    assert scores["iou"].item() == 1 and scores["dice"].item() == 1
    truth = empty.clone()
    truth[..., 0, 0] = True
    assert ch09.scores_from_counts(ch09.confusion_counts(empty, truth))["iou"].item() == 0


def test_dice_loss_matches_formula_and_punishes_missed_small_foreground(ch09):
    torch.manual_seed(0)
    logits, target = torch.randn(3, 1, 8, 8), (torch.rand(3, 1, 8, 8) > 0.7).float()
    p = logits.sigmoid()
    per_image = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    assert ch09.dice_loss(logits, target).item() == pytest.approx(per_image.mean().item(), rel=1e-6)
    lesson = ch09.dice_vs_bce_lesson()
    assert lesson["bce"] < 0.1 and lesson["dice_loss"] > 0.9  # 작은 전경을 놓친 것을 Dice 만 크게 알림
    assert ch09.dice_loss(torch.full((1, 1, 4, 4), 20.0), torch.ones(1, 1, 4, 4)).item() < 1e-6


def test_boundary_band_is_the_inner_ring(ch09):
    mask = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    mask[..., 2:7, 2:7] = True  # 5x5 정사각형
    band = ch09.boundary_band(mask, width=1)
    assert band.sum().item() == 25 - 9  # 바깥 16 픽셀 (안쪽 3x3 은 띠가 아님)
    assert not band[..., 3:6, 3:6].any()


# --- 데이터 ----------------------------------------------------------------------
def test_procedural_shapes_are_deterministic_and_exact():
    a, b = make_shapes(6, 32, seed=3), make_shapes(4, 32, seed=3)
    assert torch.equal(a.images[:4], b.images) and torch.equal(a.masks[:4], b.masks)  # 앞 k 장은 n 과 무관
    other = make_shapes(4, 32, seed=3, stream=1)
    assert not torch.equal(other.images, b.images)  # 시험 stream 은 다른 이미지
    assert set(a.masks.unique().tolist()) == {0, 1} and a.masks.dtype == torch.uint8
    fraction = a.masks.float().mean().item()
    assert 0.02 < fraction < 0.5


def _write_folder(root, sizes, *, mask_format="png", mask_value=255, fov=False):
    """실제 이미지 파일 (크기 제각각)과 0/255 (또는 0/1) 마스크를 씁니다. 전경 = 밝은 사각형 (약 8%).

    fov=True: fov/ 에 시야 마스크 (왼쪽 위 1/4 을 뺀 나머지 = 시야 안)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    if fov:
        (root / "fov").mkdir()
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate(sizes):
        image = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 4:height // 2, width // 3:2 * width // 3] = mask_value
        image[mask > 0] = 230
        Image.fromarray(image).save(root / "images" / f"img{i}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"img{i}.{mask_format}")
        if fov:
            inside = np.full((height, width), 255, np.uint8)
            inside[:height // 4, :width // 4] = 0
            Image.fromarray(inside).save(root / "fov" / f"img{i}_mask.png")


@pytest.mark.parametrize("mask_format,mask_value",
                         [("png", 255), ("png", 1), ("gif", 255), ("tif", 1), ("jpg", 255)])
def test_mask_folder_reads_0_255_and_0_1_masks_at_native_size(tmp_path, mask_format, mask_value):
    _write_folder(tmp_path, [(40, 30), (64, 48), (33, 71)], mask_format=mask_format, mask_value=mask_value)
    data = load_mask_folder(tmp_path)
    assert isinstance(data, NativeData) and data.names == ["img0.jpg", "img1.jpg", "img2.jpg"]
    # 원래 크기 그대로 (줄이지 않음)
    assert [tuple(image.shape) for image in data.images] == [(3, 30, 40), (3, 48, 64), (3, 71, 33)]
    assert [tuple(mask.shape) for mask in data.masks] == [(1, 30, 40), (1, 48, 64), (1, 71, 33)]
    assert all(fov.all() for fov in data.fov)  # fov/ 가 없으면 모든 픽셀을 셈
    raw = read_mask(tmp_path / "masks" / f"img1.{mask_format}")
    assert raw.shape == (48, 64)
    assert raw.sum() == pytest.approx((24 - 12) * (42 - 21), abs=10)  # 0/1 도 0/255 도 같은 전경
    assert data.masks[1].sum().item() == raw.sum()
    assert set(torch.cat([m.flatten() for m in data.masks]).unique().tolist()) == {0, 1}


def test_mask_with_values_other_than_two_is_refused(tmp_path):
    """0/128/255 마스크 (안티에일리어싱, 다중 클래스)는 '> 0' 으로 읽으면 전경이 조용히 부풀어 거절."""
    _write_folder(tmp_path, [(20, 20), (24, 20)])
    soft = np.zeros((20, 24), np.uint8)
    soft[5:10, 5:10], soft[10:12, 5:10] = 255, 128
    Image.fromarray(soft).save(tmp_path / "masks" / "img1.png")
    with pytest.raises(UserError, match=r"img1\.png.*0/255"):
        load_mask_folder(tmp_path)
    three_labels = np.zeros((20, 24), np.uint8)
    three_labels[:5], three_labels[5:10] = 1, 2  # 0/1/2: 두 값이 아님
    Image.fromarray(three_labels).save(tmp_path / "masks" / "img1.png")
    with pytest.raises(UserError, match="img1.png"):
        load_mask_folder(tmp_path)


def test_fov_folder_excludes_pixels_from_metrics(ch09, tmp_path):
    """fov/ 의 시야 마스크를 읽고, 시야 밖의 틀린 예측·배경은 TP·FP·FN·TN 어디에도 세지 않음."""
    _write_folder(tmp_path, [(40, 32), (48, 40)], fov=True)
    data = load_mask_folder(tmp_path)
    assert data.fov[0].shape == (1, 32, 40) and data.fov[0].sum().item() == 32 * 40 - 8 * 10
    truth = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    truth[..., 2:, 2:] = True  # 전경 4 픽셀 (모두 시야 안)
    predicted = truth.clone()
    predicted[..., 0, 0] = True  # 시야 밖의 거짓 양성 하나
    valid = torch.ones_like(truth)
    valid[..., :2, :2] = False  # 왼쪽 위 4 픽셀 = 시야 밖
    assert ch09.confusion_counts(predicted, truth, valid).tolist() == [[4, 0, 0, 8]]  # 16 − 4 − 4 = 8 TN
    assert ch09.confusion_counts(predicted, truth).tolist() == [[4, 1, 0, 11]]  # 시야 없이: FP 하나
    (tmp_path / "fov").rename(tmp_path / "mask_fov")  # 다른 흔한 폴더 이름도
    assert load_mask_folder(tmp_path).fov[0].sum().item() == 32 * 40 - 8 * 10
    (tmp_path / "mask_fov" / "img1_mask.png").unlink()
    with pytest.raises(UserError, match="img1.jpg"):
        load_mask_folder(tmp_path)


def test_mask_folder_pairs_by_stem_and_reports_bad_pairs(tmp_path):
    _write_folder(tmp_path / "ok", [(20, 20), (24, 20)])
    (tmp_path / "ok" / "masks" / "img1.png").rename(tmp_path / "ok" / "masks" / "img1_mask.png")
    assert [m.name for _, m in pair_files(tmp_path / "ok")] == ["img0.png", "img1_mask.png"]

    _write_folder(tmp_path / "lonely", [(20, 20), (24, 20)])
    (tmp_path / "lonely" / "masks" / "img1.png").unlink()
    with pytest.raises(UserError, match="img1.jpg"):
        pair_files(tmp_path / "lonely")

    _write_folder(tmp_path / "size", [(20, 20)])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "size" / "masks" / "img0.png")
    with pytest.raises(UserError, match="10x10.*20x20"):
        load_mask_folder(tmp_path / "size")


# --- 잘못된 입력: 종료 코드 2, 한 줄, traceback 없음 --------------------------------------
def _assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("오류:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_folders(ch09, tmp_path, monkeypatch, capsys):
    """짝 없는 이미지(이름을 댐), 크기가 다른 마스크, 0/255 가 아닌 마스크, 빈 폴더, 아무것도 없는
    --data-dir → 한 줄 UserError. 사용자처럼 실행해(하나는 하위 프로세스) 종료 코드 2, 파일 이름을 댄
    한 줄, traceback 없음, 그리고 학습 전(last.pt 가 없음)에 멈췄는지 확인합니다.
    """
    _write_folder(tmp_path / "lonely", [(20, 20), (24, 20), (30, 20)])
    (tmp_path / "lonely" / "masks" / "img2.png").unlink()
    _write_folder(tmp_path / "size", [(20, 20), (24, 20), (30, 20)])
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "size" / "masks" / "img1.png")
    _write_folder(tmp_path / "values", [(20, 20), (24, 20), (30, 20)])
    graded = np.arange(400, dtype=np.uint8).reshape(20, 20)  # 0~255 의 여러 값
    Image.fromarray(graded).save(tmp_path / "values" / "masks" / "img0.png")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    (tmp_path / "no_masks" / "images").mkdir(parents=True)
    (tmp_path / "nothing").mkdir()
    cases = [("lonely", "img2.jpg"), ("size", "img1.png"), ("values", "img0.png"), ("empty", "이미지 파일"),
             ("no_masks", "masks/"), ("nothing", "nothing")]
    import utils.data.common

    # 테스트는 네트워크를 쓰지 않음: 'nothing' 폴더에서 Pet 을 내려받으려는 시도를 실패로 바꿈
    monkeypatch.setattr(utils.data.common, "try_download", lambda fn, **kw: (None, "no network in tests"))
    for folder, needle in cases:
        with pytest.raises(UserError, match=needle):
            load_segmentation_data("real", tmp_path / folder, smoke=False, size=32, seed=0,
                                   sizes=(4, 4, 4), val_fraction=0.2)
    result = run_script(SCRIPT, "--data", "real", "--data-dir", str(tmp_path / "lonely"), "--device", "cpu",
                        "--out-dir", str(tmp_path / "out"))
    _assert_one_line_error(result, "img2.jpg")
    for folder, needle in (("size", "img1.png"), ("values", "img0.png")):
        out = tmp_path / f"out_{folder}"
        with pytest.raises(SystemExit) as stop:
            ch09.run(ch09.main, ch09.Config, argv=["--data-dir", str(tmp_path / folder), "--device", "cpu",
                                                   "--out-dir", str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and needle in lines[0], lines
        assert not (out / "last.pt").exists()  # 학습 전에 멈춤


def test_folder_run_then_predict(ch09, tmp_path, capsys):
    """내 폴더(크기 제각각, 0/255 마스크)를 원래 해상도로: 예산 한 줄(사진 × 패치 × 바퀴)대로 학습 →
    --predict 가 큰 사진(조각 여러 개)을 원래 크기로 예측해 마스크, 그림, prediction.json 을 씀."""
    _write_folder(tmp_path / "data", [(40 + 3 * i, 34 + 2 * i) for i in range(8)])
    out = tmp_path / "out"
    common = ("--data-dir", str(tmp_path / "data"), "--device", "cpu", "--out-dir", str(out))
    # 8장 → 시험 1, 검증 1, 학습 6. 바퀴마다 6 × 4 = 24 패치, 예산 48 패치 → 2 바퀴 (--epochs 없이)
    ch09.run(ch09.main, ch09.Config, argv=["--width", "4", "--patch-size", "32", "--patches-per-image", "4",
                                           "--train-images", "48", *common])
    stdout = capsys.readouterr().out
    assert "사진 6장 × 사진당 4패치 = 바퀴마다 24패치 (32x32)" in stdout
    assert "24패치 × 2바퀴(epoch) ≈ 48패치" in stdout
    record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"].startswith("mask folder") and record["data"].endswith("(real, native resolution)")
    assert record["metrics"]["test_images"] == 1 and "test_auc" in record["metrics"]
    assert "train_dice" in record["metrics"]  # 학습 지표를 시험 지표와 나란히
    assert (out / "history.csv").read_text(encoding="utf-8").count("\n") == 1 + 2  # 머리 + 2 바퀴

    picture = tmp_path / "photo.png"
    Image.fromarray(np.full((300, 280, 3), 40, np.uint8)).save(picture)  # > TILE_SIZE: 조각 4개
    capsys.readouterr()
    ch09.predict(ch09.Config(predict=str(picture), out_dir=str(out), device="cpu"), torch.device("cpu"), out)
    prediction = json.loads((out / "prediction.json").read_text(encoding="utf-8"))
    assert (prediction["width"], prediction["height"], prediction["native_resolution"]) == (280, 300, True)
    assert Image.open(prediction["mask"]).size == (280, 300)  # 원본 크기의 마스크
    assert (out / "prediction_overlay.png").stat().st_size > 1000
    assert prediction["all_background"] == ("전경을 하나도" in capsys.readouterr().out)  # 전부 배경이면 말함

    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((4, 30, 3), np.uint8)).save(tmp_path / "thin.png")
    for bad, needle in ((tmp_path / "notes.txt", "읽을 수 없습니다"), (tmp_path, "폴더"),
                        (tmp_path / "missing.jpg", "없습니다"), (tmp_path / "thin.png", "너무 작습니다")):
        config = ch09.Config(predict=str(bad), out_dir=str(out), device="cpu")
        with pytest.raises(UserError, match=needle):
            ch09.predict(config, torch.device("cpu"), out)


# --- 학습 확인 -------------------------------------------------------------------
def test_short_offline_run_beats_all_background(ch09):
    """작은 U-Net 을 32x32 도형 192 장으로 3 epoch 학습: 시험 IoU 가 '전부 배경'(IoU 0)보다 0.3 이상.

    (같은 설정으로 잰 값 0.53; 학습이 안 되면 0 근처 — 1 epoch 뒤에는 0.04 였음.)
    """
    torch.manual_seed(0)
    train, test = make_shapes(192, 32, seed=0), make_shapes(64, 32, seed=0, stream=2)
    mean, std = ch09.channel_stats(train.images)
    model = ch09.build_model(width=8, depth=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(1, 4):
        ch09.train_one_epoch(model, train, optimizer, None, "cpu", epoch, batch_size=16, generator=generator,
                             mean=mean, std=std, dice_weight=1.0)
    scores = ch09.evaluate(model, test, "cpu", mean=mean, std=std)
    baseline = ch09.trivial_baselines(test)["background"]
    assert baseline["iou"] == 0
    assert scores["iou"] >= baseline["iou"] + 0.3, scores


def test_no_skip_flag_turns_skip_off(ch09):
    """`--no-skip` 는 skip=False 로 (필드 이름이 no_skip 이면 argparse 가 '--no-' 를 False 로 읽어 무시됨)."""
    from utils.runtime import parse_config

    assert parse_config(ch09.Config, ["--no-skip"]).skip is False
    assert parse_config(ch09.Config, []).skip is True


def test_oxford_pet_layout_trimap_and_corrupt_files(ch09, tmp_path):
    """torchvision 의 Oxford-IIIT Pet 배치를 작게 흉내: trimap 1·3 = 전경, 깨진 JPEG 는 건너뛰고 셈."""
    from utils.data.segmentation import load_oxford_pets

    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    names = ["Abyssinian_1", "Abyssinian_2", "beagle_3", "beagle_4"]
    trimap = np.full((20, 30), 2, np.uint8)  # 배경
    trimap[5:10, 5:15] = 1  # 동물 50 픽셀
    trimap[2:5, 5:15] = 3  # 경계 30 픽셀 (경계를 배경으로 치면 전경이 절반 가까이 줄어 티가 남)
    for name in names:
        Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(base / "images" / f"{name}.jpg")
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
    (base / "images" / "beagle_4.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # 깨진 파일
    lines = [f"{name} 1 1 1" for name in names]
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines[:2]) + "\n")
    (base / "annotations" / "test.txt").write_text("\n".join(lines[2:]) + "\n")

    test, skipped = load_oxford_pets(tmp_path, "test", size=30)
    assert (len(test), skipped) == (1, 1)
    assert test.masks.shape == (1, 1, 30, 30)
    assert test.masks.sum().item() == pytest.approx(80 * (30 * 30) / (20 * 30), abs=12)  # 동물 + 경계
    train, val, test, name = load_segmentation_data("real", tmp_path, smoke=False, size=16, seed=0,
                                                    sizes=(4, 4, 4), val_fraction=0.3)
    assert name.startswith("Oxford-IIIT Pet") and (len(train), len(val), len(test)) == (1, 1, 1)


# --- 원래 해상도: 패치 학습, 조각 예측, 예산, AUC, '배운 것이 없음' 경고 -----------------------------
def test_tiled_prediction_has_no_seams_and_covers_every_pixel(ch09):
    """픽셀마다 독립인 모델(1x1 합성곱)로: 조각으로 예측한 것 = 한 번에 예측한 것 (이음매의 가중치 합,
    가장자리 조각, 덮이지 않은 픽셀 어디가 틀려도 달라짐), 상수 이미지 → 상수 예측."""
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 1, kernel_size=1)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    image = torch.randint(0, 256, (1, 3, 300, 530), dtype=torch.uint8)  # 조각 2 × 3 개, 끝 조각은 겹침이 큼
    tiled = ch09.predict_logits(pointwise, image, "cpu", mean, std, tile=128, overlap=32)
    whole = pointwise(ch09.to_input(image, mean, std, "cpu"))
    assert tiled.shape == (1, 1, 300, 530)
    assert torch.allclose(tiled, whole, atol=1e-5)
    constant = torch.full((1, 3, 300, 530), 77, dtype=torch.uint8)
    flat = ch09.predict_logits(pointwise, constant, "cpu", mean, std, tile=128, overlap=32)
    assert (flat.max() - flat.min()).item() < 1e-5
    assert ch09.tile_starts(300, 128, 32) == [0, 86, 172]  # 처음 0, 끝 300 − 128, 사이는 고르게
    assert ch09.tile_starts(100, 128, 32) == [0]


def test_tiled_equals_whole_image_when_it_fits_one_tile(ch09):
    """U-Net 에서도: 조각 하나에 드는 이미지(16의 배수가 아닌 크기 포함)는 한 번에 예측한 것과 같음."""
    torch.manual_seed(0)
    model = ch09.build_model(width=4, depth=3).eval()
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    for height, width in ((96, 128), (75, 101)):
        image = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
        with torch.no_grad():
            whole = model(ch09.to_input(image, mean, std, "cpu"))
        tiled = ch09.predict_logits(model, image, "cpu", mean, std, tile=128, overlap=32)
        assert torch.allclose(tiled, whole, atol=1e-5)


def test_auc_from_histograms_matches_sklearn(ch09):
    """로짓 칸(bin)의 히스토그램으로 센 ROC-AUC = scikit-learn 의 roc_auc_score (같은 칸의 점수끼리는 비김).
    이미지마다와 데이터 전체(칸별 수를 더해서) 모두. 시야 밖 픽셀은 세지 않음."""
    torch.manual_seed(0)
    step = 2 * ch09.AUC_LOGIT_RANGE / (ch09.AUC_BINS - 1)
    truth = torch.rand(3, 1, 20, 20) < 0.2
    grid = (torch.randn(3, 1, 20, 20) + 1.5 * truth + ch09.AUC_LOGIT_RANGE).div(step).round()
    logits = grid * step - ch09.AUC_LOGIT_RANGE  # 칸 중심에 놓음: 칸이 같으면 점수도 같음
    logits[0, 0, :5] = logits[0, 0, 0, 0]  # 같은 점수의 전경·배경이 많음 (비김의 반 점수가 빠지면 틀림)
    valid = torch.ones_like(truth)
    valid[2, :, :, :10] = False
    histograms = ch09.score_histograms(logits, truth, valid)
    per_image = ch09.auc_from_histograms(histograms)
    for i in range(3):
        keep = valid[i].flatten()
        reference = roc_auc_score(truth[i].flatten()[keep].numpy(), logits[i].flatten()[keep].numpy())
        assert per_image[i].item() == pytest.approx(reference, abs=1e-9)
    keep = valid.flatten()
    reference = roc_auc_score(truth.flatten()[keep].numpy(), logits.flatten()[keep].numpy())
    assert ch09.auc_from_histograms(histograms.sum(dim=0)).item() == pytest.approx(reference, abs=1e-9)
    empty = ch09.score_histograms(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert torch.isnan(ch09.auc_from_histograms(empty)).all()  # 전경이 없으면 AUC 는 정의되지 않음


def test_patches_rotate_masks_with_images_and_repeat_with_the_seed(ch09):
    """패치의 회전·색 흔들기 뒤에도 마스크는 그 이미지의 밝은 자리 그대로, 같은 generator 상태 → 같은 패치."""
    torch.manual_seed(0)
    images, masks = [], []
    for height, width in ((50, 70), (64, 40)):
        mask = torch.rand(1, height, width) < 0.3
        masks.append(mask.to(torch.uint8))
        images.append(torch.where(mask, 255, 0).to(torch.uint8).expand(3, -1, -1).clone())
    data = NativeData(images, masks, [torch.ones_like(m, dtype=torch.bool) for m in masks], ["a", "b"])
    patches = ch09.sample_patches(data, 16, 32, torch.Generator().manual_seed(3))
    assert patches.images.shape == (32, 3, 32, 32) and patches.masks.shape == (32, 1, 32, 32)
    assert torch.equal(patches.masks[:, 0].bool(), patches.images[:, 0] > 128)  # 같이 돌고, 색은 넘지 않음
    assert len({tuple(p.float().mean(dim=(1, 2)).tolist()) for p in patches.images}) > 16  # 색 흔들기가 있음
    again = ch09.sample_patches(data, 16, 32, torch.Generator().manual_seed(3))
    assert torch.equal(again.images, patches.images)  # --resume 이 같은 패치를 뽑는 조건


def test_budget_counts_patches_not_epochs(ch09, tmp_path, capsys):
    """사진이 적을수록 바퀴가 많아져 본 패치 수(걸음 수)가 예산과 같고, 시간 상한(max_epochs)에서 멈추며,
    --epochs 를 주면 그 값. 학습 전에 '사진 × 패치 × 바퀴' 와 걸릴 시간을 한 줄로 알림."""
    _write_folder(tmp_path, [(48, 40)] * 7)
    data = load_mask_folder(tmp_path)
    train, val = data.subset(range(5)), data.subset([5, 6])
    config = ch09.Config(patch_size=32, patches_per_image=4, train_images=200, max_epochs=40, width=4)
    assert ch09.plan_training(config, train, val) == (10, 20)  # 5장 × 4패치 = 20, 200 / 20 = 10 바퀴
    line = capsys.readouterr().out
    assert "사진 5장 × 사진당 4패치 = 바퀴마다 20패치 (32x32)" in line
    assert "20패치 × 10바퀴(epoch) ≈ 200패치" in line
    assert "이 기계에서 약" in line
    config.train_images = 100_000
    assert ch09.plan_training(config, train, val)[0] == 40  # 시간 상한
    config.epochs = 3
    assert ch09.plan_training(config, train, val)[0] == 3  # --epochs 가 이김
    config.epochs, config.train_images = 0, 10  # 사진이 예산보다 많으면: 사진당 10 // 5 = 2 패치, 1 바퀴
    assert ch09.plan_training(config, train, val) == (1, 10)
    config.train_images = 0  # 0 = 자동: 원래 해상도 36,000 패치 → 사진당 min(4, 7,200) = 4, 40 바퀴 상한
    assert ch09.train_budget(config, native=True) == 36_000
    assert ch09.plan_training(config, train, val) == (40, 20)
    fixed = ch09.Config()  # 절차적 3,000장 × 6바퀴
    assert ch09.train_budget(fixed, native=False) == 18_000
    config.patch_size = 256  # 가장 작은 사진보다 큰 패치는 짧은 변(40)으로
    assert ch09.patch_size_for(train, config) == 40


def test_silent_failure_warning_fires_only_when_nothing_was_learned(ch09, tmp_path):
    """원래 해상도 폴더에서 학습 전 모델은 '전부 전경/배경' IoU 근처 → 경고 한 줄, 잠깐 학습하면 경고 없음."""
    _write_folder(tmp_path, [(64, 48), (56, 52), (60, 44), (64, 64)])
    data = load_mask_folder(tmp_path)
    train, test = data.subset([0, 1, 2]), data.subset([3])
    mean, std = ch09.channel_stats(train.images)
    baselines = ch09.trivial_baselines(test)
    assert baselines["background"]["iou"] == 0 and 0.05 < baselines["foreground"]["iou"] < 0.12
    torch.manual_seed(0)
    model = ch09.build_model(width=4, depth=2)
    untrained = ch09.evaluate(model, test, "cpu", mean=mean, std=std)
    warning = ch09.silent_failure_warning(untrained, baselines, native=True)
    assert warning is not None and warning.startswith("경고:") and "--epochs" in warning, untrained["iou"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(1, 5):
        patches = ch09.sample_patches(train, 16, 32, generator)
        ch09.train_one_epoch(model, patches, optimizer, None, "cpu", epoch, batch_size=16,
                             generator=generator, mean=mean, std=std, dice_weight=1.0)
    trained = ch09.evaluate(model, test, "cpu", mean=mean, std=std)
    assert ch09.silent_failure_warning(trained, baselines, native=True) is None, trained["iou"]


def test_threshold_chosen_on_validation_maximises_dice(ch09):
    """로짓 = 첫 채널의 밝기인 가짜 모델: 전경 0.78, 배경 0.39, 조금 밝은 배경 0.59 → Dice 최고의 문턱값은
    0.59 와 0.78 사이 (Dice 1). 기본 0 (모두 전경)보다 Dice 가 높아야 하고, 그 문턱값을 evaluate 가 씀."""
    class FirstChannel(torch.nn.Module):
        def forward(self, x):
            return x[:, :1]

    mask = torch.zeros(1, 40, 50, dtype=torch.uint8)
    mask[:, 10:20, 10:30] = 1
    image = torch.where(mask.bool(), 200, 100).to(torch.uint8).expand(3, -1, -1).clone()
    image[:, 30:32, 5:15] = 150  # 조금 밝은 배경: 문턱값이 너무 낮으면 거짓 양성
    data = NativeData([image], [mask], [torch.ones_like(mask, dtype=torch.bool)], ["x"])
    options = {"mean": torch.zeros(3), "std": torch.ones(3)}
    threshold = ch09.choose_threshold(FirstChannel(), data, "cpu", **options)
    assert 150 / 255 < threshold < 200 / 255
    chosen = ch09.evaluate(FirstChannel(), data, "cpu", threshold=threshold, **options)
    assert chosen["dice"] == pytest.approx(1.0)
    assert ch09.evaluate(FirstChannel(), data, "cpu", **options)["dice"] < 0.5  # 확률 0.5 = 로짓 0: 모두 전경


@pytest.mark.slow
def test_folder_run_resumes_exactly(ch09, tmp_path, capsys, monkeypatch, sigint_raises):
    """원래 해상도 폴더: 2 바퀴째에 Ctrl+C → --resume 이 끊지 않은 실행과 같은 숫자 (패치 위치·회전·색
    흔들기의 난수가 체크포인트에 저장된 generator 에서 나와야 함). 진입점 run() 을 이 프로세스에서 부름."""
    _write_folder(tmp_path / "data", [(48 + 2 * i, 40 + i) for i in range(6)])
    common = ["--data-dir", str(tmp_path / "data"), "--device", "cpu", "--width", "4", "--patch-size", "32",
              "--patches-per-image", "4", "--epochs", "3", "--no-compare"]
    ch09.run(ch09.main, ch09.Config, argv=[*common, "--out-dir", str(tmp_path / "a")])
    monkeypatch.setenv("TUTORIAL_SIGINT_AT", "epoch 2:0")
    with pytest.raises(SystemExit) as stopped:
        ch09.run(ch09.main, ch09.Config, argv=[*common, "--out-dir", str(tmp_path / "b")])
    assert stopped.value.code == 130
    monkeypatch.delenv("TUTORIAL_SIGINT_AT")
    capsys.readouterr()
    ch09.run(ch09.main, ch09.Config, argv=[*common, "--out-dir", str(tmp_path / "b"), "--resume"])
    assert "[이어하기]" in capsys.readouterr().out
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text(encoding="utf-8"))["metrics"]
               for run in "ab"]
    assert metrics[0] == metrics[1]
