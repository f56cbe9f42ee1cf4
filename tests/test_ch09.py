"""09장 U-Net: 모양, 전치 합성곱, 지표, 폴더 데이터, 잘못된 입력, 짧은 학습이 '전부 배경'을 이기는지."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, load_chapter, run_script
from PIL import Image
from sklearn.metrics import f1_score, jaccard_score

from utils.data.segmentation import (
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


def _write_folder(root, sizes, *, mask_format="png", mask_value=255):
    """실제 이미지 파일 (크기 제각각)과 0/255 (또는 0/1) 마스크를 씁니다. 전경 = 밝은 사각형."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate(sizes):
        image = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 4:height // 2, width // 3:2 * width // 3] = mask_value
        image[mask > 0] = 230
        Image.fromarray(image).save(root / "images" / f"img{i}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"img{i}.{mask_format}")


@pytest.mark.parametrize("mask_format,mask_value",
                         [("png", 255), ("png", 1), ("gif", 255), ("tif", 1), ("jpg", 255)])
def test_mask_folder_reads_0_255_and_0_1_masks_of_different_sizes(tmp_path, mask_format, mask_value):
    _write_folder(tmp_path, [(40, 30), (64, 48), (33, 71)], mask_format=mask_format, mask_value=mask_value)
    data = load_mask_folder(tmp_path, size=32)
    assert data.images.shape == (3, 3, 32, 32) and data.masks.shape == (3, 1, 32, 32)
    assert data.names == ["img0.jpg", "img1.jpg", "img2.jpg"]
    raw = read_mask(tmp_path / "masks" / f"img1.{mask_format}")
    assert raw.shape == (48, 64)
    assert raw.sum() == pytest.approx((24 - 12) * (42 - 21), abs=10)  # 0/1 도 0/255 도 같은 전경
    fraction = data.masks.float().mean().item()  # 사각형 = 1/4 × 1/3 ≈ 8%
    assert 0.05 < fraction < 0.12


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
        load_mask_folder(tmp_path / "size", 16)


# --- 잘못된 입력: 종료 코드 2, 한 줄, traceback 없음 --------------------------------------
def _assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("오류:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_folders(ch09, tmp_path, monkeypatch):
    """짝 없는 이미지(이름을 댐), 크기가 다른 마스크, 빈 폴더, 아무것도 없는 --data-dir → 한 줄 UserError.

    하나는 사용자처럼 하위 프로세스로 돌려 종료 코드 2, 한 줄, traceback 없음을 확인합니다.
    """
    _write_folder(tmp_path / "lonely", [(20, 20), (24, 20), (30, 20)])
    (tmp_path / "lonely" / "masks" / "img2.png").unlink()
    _write_folder(tmp_path / "size", [(20, 20), (24, 20), (30, 20)])
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "size" / "masks" / "img1.png")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    (tmp_path / "no_masks" / "images").mkdir(parents=True)
    (tmp_path / "nothing").mkdir()
    cases = [("lonely", "img2.jpg"), ("size", "img1.png"), ("empty", "이미지 파일"), ("no_masks", "masks/"),
             ("nothing", "nothing")]
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


def test_folder_run_then_predict(ch09, tmp_path):
    """내 폴더(크기 제각각, 0/255 마스크)로 짧게 학습 → --predict 가 마스크, 그림, prediction.json 을 씀."""
    _write_folder(tmp_path / "data", [(40 + 3 * i, 30 + 2 * i) for i in range(8)])
    out = tmp_path / "out"
    common = ("--data-dir", str(tmp_path / "data"), "--device", "cpu", "--out-dir", str(out))
    result = run_script(SCRIPT, "--data", "real", "--epochs", "1", "--width", "4", "--image-size", "32",
                        "--no-compare", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"].startswith("mask folder") and "test_iou_per_image" in record["metrics"]

    picture = tmp_path / "photo.png"
    Image.fromarray(np.full((45, 61, 3), 40, np.uint8)).save(picture)
    result = run_script(SCRIPT, "--predict", str(picture), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    prediction = json.loads((out / "prediction.json").read_text(encoding="utf-8"))
    assert (prediction["width"], prediction["height"]) == (61, 45)
    assert Image.open(prediction["mask"]).size == (61, 45)  # 원본 크기의 마스크
    assert (out / "prediction_overlay.png").stat().st_size > 1000
    assert prediction["all_background"] == ("전경을 하나도" in result.stdout)  # 전부 배경이면 말해야 함

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
    baseline = ch09.all_background_baseline(test)
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
