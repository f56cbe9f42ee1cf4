"""06장: IoU·NMS·mAP 를 참조 구현과 맞추고, 목표 부호화·손실·데이터 읽기·짧은 학습을 확인합니다."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import torchvision
from conftest import load_chapter, run_script

from utils.data.detection import (
    SHAPE_CLASSES,
    letterbox,
    make_shapes,
    parse_yolo_label,
    read_voc_folder,
    read_yolo_folder,
)
from utils.runtime import UserError

ch06 = load_chapter("06")


def random_boxes(count: int, generator: torch.Generator, size: float = 64.0) -> torch.Tensor:
    corners = torch.rand(count, 2, 2, generator=generator) * size
    return torch.cat([corners.min(1).values, corners.max(1).values + 0.5], dim=1)  # (count, 4) xyxy


# --- IoU, NMS --------------------------------------------------------------------------------
def test_box_iou_matches_torchvision_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    a, b = random_boxes(40, generator), random_boxes(30, generator)
    assert torch.allclose(ch06.box_iou(a, b), torchvision.ops.box_iou(a, b), atol=1e-6)
    assert torch.allclose(ch06.cxcywh_to_xyxy(ch06.xyxy_to_cxcywh(a)), a, atol=1e-5)
    assert torch.allclose(ch06.xyxy_to_cxcywh(a), torchvision.ops.box_convert(a, "xyxy", "cxcywh"), atol=1e-5)


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_nms_matches_torchvision_on_random_boxes(threshold):
    generator = torch.Generator().manual_seed(1)
    # 모여 있는 상자들: 서로 많이 겹쳐야 NMS 가 실제로 지움
    boxes = random_boxes(200, generator, size=20.0)
    scores = torch.rand(200, generator=generator)
    labels = torch.randint(0, 4, (200,), generator=generator)
    assert torch.equal(ch06.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    mine = ch06.batched_nms(boxes, scores, labels, threshold)
    assert torch.equal(mine, torchvision.ops.batched_nms(boxes, scores, labels, threshold))
    assert len(mine) < 190  # 실제로 지운 것이 있음


# --- mAP --------------------------------------------------------------------------------------
def detection(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels)}


TRUTH = [(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([0, 0])),
         (torch.tensor([[5.0, 5, 15, 15]]), torch.tensor([0]))]


def test_map_perfect_and_empty():
    perfect = [detection(b.tolist(), [0.9] * len(b), lab.tolist()) for b, lab in TRUTH]
    assert ch06.mean_average_precision(perfect, TRUTH, 2)["map"] == pytest.approx(1.0)
    assert ch06.mean_average_precision(perfect, TRUTH, 2, ch06.COCO_IOU_THRESHOLDS, "coco101")["map"] == 1.0
    nothing = [detection([], [], []) for _ in TRUTH]
    assert ch06.mean_average_precision(nothing, TRUTH, 2)["map"] == 0.0


def test_map_hand_worked_mixed_case():
    """정답 3개, 점수 순 검출 TP, FP, TP, TP:
    재현율 1/3, 1/3, 2/3, 1 / 정밀도 1, 1/2, 2/3, 3/4 → 포락선 1, 3/4, 3/4, 3/4.
    모든 점: 1/3·1 + 1/3·3/4 + 1/3·3/4 = 5/6 (포락선 대신 정밀도 그대로면 0.806).
    VOC 11점: t=0~0.3 → 1 (4점), t=0.4~1.0 → 3/4 (7점) → 9.25/11.
    COCO 101점: t=0.00~0.33 → 1 (34점), t=0.34~1.00 → 3/4 (67점) → 84.25/101.
    클래스 1 은 정답이 없으므로 (검출이 있어도) 평균에서 빠집니다.
    """
    detections = [
        detection([[0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30], [50, 0, 60, 8]],
                  [0.9, 0.8, 0.6, 0.5], [0, 0, 0, 1]),  # TP, FP, TP, (클래스 1)
        detection([[5, 5, 15, 15]], [0.7], [0]),  # TP
    ]
    results = {method: ch06.mean_average_precision(detections, TRUTH, 2, (0.5,), method)
               for method in ("all", "voc11", "coco101")}
    assert results["all"]["map"] == pytest.approx(5 / 6)
    assert results["voc11"]["map"] == pytest.approx(9.25 / 11)
    assert results["coco101"]["map"] == pytest.approx(84.25 / 101)
    assert list(results["all"]["per_class"]) == [0]
    # 같은 정답에 두 번째로 맞춘 상자는 FP (한 정답은 한 번만 짝지음)
    duplicate = [detection([[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.8], [0, 0]), detection([], [], [])]
    recall, precision = ch06.mean_average_precision(duplicate, TRUTH, 1)["curves"][0]
    assert precision.tolist() == pytest.approx([1.0, 0.5])


def test_map_matches_torchmetrics():
    """COCO 101점 mAP@[.5:.95] 와 mAP@0.5 가 torchmetrics(faster_coco_eval)와 같아야 합니다.

    클래스마다 정답 수를 소수(7, 11, 13)로 둡니다: 재현율 k/n 이 101개 재현율 점 t = j/100 과 정확히
    겹치면 searchsorted 가 부동소수 반올림에 따라 달라져 두 구현이 1e-3 정도 어긋날 수 있기 때문입니다
    (정답 15개로 해 보았을 때 0.2925 대 0.2927).
    """
    from torchmetrics.detection import MeanAveragePrecision

    generator = torch.Generator().manual_seed(3)
    all_labels = torch.tensor([0] * 7 + [1] * 11 + [2] * 13)[torch.randperm(31, generator=generator)]
    truths, detections = [], []
    for labels in torch.split(all_labels, 3):  # 이미지 11장, 물체 1~3개
        count = len(labels)
        boxes = random_boxes(count, generator, size=48.0) + torch.tensor([0, 0, 8, 8])
        truths.append((boxes, labels))
        jitter = (torch.rand(count, 4, generator=generator) - 0.5) * 6  # 위치가 조금씩 틀린 검출
        extra = random_boxes(2, generator, size=48.0) + torch.tensor([0, 0, 8, 8])  # 거짓 양성
        detections.append({"boxes": torch.cat([boxes + jitter, extra]),
                           "scores": torch.rand(count + 2, generator=generator),
                           "labels": torch.cat([labels, torch.randint(0, 3, (2,), generator=generator)])})
    metric = MeanAveragePrecision(iou_type="bbox", backend="faster_coco_eval")
    metric.update(detections, [{"boxes": b, "labels": lab} for b, lab in truths])
    reference = metric.compute()
    coco = ch06.mean_average_precision(detections, truths, 3, ch06.COCO_IOU_THRESHOLDS, "coco101")["map"]
    coco50 = ch06.mean_average_precision(detections, truths, 3, (0.5,), "coco101")["map"]
    assert 0.2 < coco < 0.9  # 쉬운 경우(0 또는 1)가 아님
    assert coco == pytest.approx(float(reference["map"]), abs=1e-6)
    assert coco50 == pytest.approx(float(reference["map_50"]), abs=1e-6)


# --- 목표 부호화, 손실 ------------------------------------------------------------------------
def test_encode_then_decode_targets_is_identity():
    data = make_shapes(40, seed=5)
    target = ch06.encode_targets(data.boxes, data.labels, 8, 64, 5)
    decoded = ch06.decode_targets(target, 64)
    for n, (boxes, labels) in enumerate(decoded):
        valid = data.labels[n] >= 0
        truth = sorted(zip(data.boxes[n][valid].tolist(), data.labels[n][valid].tolist()))
        mine = sorted(zip(boxes.tolist(), labels.tolist()))
        assert len(mine) == len(truth)
        for (box, label), (true_box, true_label) in zip(mine, truth):
            assert label == true_label
            assert box == pytest.approx(true_box, abs=1e-3)


def perfect_raw(target: torch.Tensor, boxes_per_cell: int = 2, big: float = 40.0) -> torch.Tensor:
    """목표와 똑같은 예측을 내는 원시 출력: 상자 0 = 정답, 상자 1 = 엉뚱한 곳·신뢰도 0, 클래스 = one-hot."""
    logit = lambda p: torch.log(p / (1 - p))
    count, size, _, channels = target.shape
    num_classes = channels - 5
    raw = torch.full((count, size, size, boxes_per_cell * 5 + num_classes), -big, dtype=torch.float64)
    inside = target[..., :4].clamp(1e-6, 1 - 1e-6).double()
    raw[..., 0:4] = logit(inside)
    raw[..., 4] = torch.where(target[..., 4] > 0, big, -big)
    raw[..., 5:9] = logit(torch.full_like(inside, 0.9))  # 오른쪽 아래 구석의 작은 상자 (IoU 0 근처)
    raw[..., boxes_per_cell * 5:] = target[..., 5:].double() * 2 * big - big
    return raw


def test_loss_is_zero_for_perfect_prediction_and_uses_iou_as_confidence_target():
    data = make_shapes(8, seed=6)
    target = ch06.encode_targets(data.boxes, data.labels, 8, 64, 5).double()
    loss, terms = ch06.yolo_loss(perfect_raw(target), target, 5.0, 0.5)
    assert loss.item() < 1e-8, terms
    # 상자를 칸 안에서 옮기면: 좌표 항이 생기고, 신뢰도 1 은 이제 IoU(<1) 와 달라 obj 항도 생김
    shifted = perfect_raw(target)
    shifted[..., 0] += 1.0
    _, terms = ch06.yolo_loss(shifted, target, 5.0, 0.5)
    assert terms["xy"] > 0.1 and terms["obj"] > 0.01
    assert terms["noobj"] < 1e-8 and terms["class"] < 1e-8
    # 배경 칸의 신뢰도를 1 로 올리면 noobj 항만 λ_noobj·(칸 수) 만큼
    background = perfect_raw(target)
    empty = target[..., 4] == 0
    background[..., 4][empty] = 40.0
    _, terms = ch06.yolo_loss(background, target, 5.0, 0.5)
    assert terms["noobj"].item() == pytest.approx(0.5 * empty.sum().item() / len(target), rel=1e-6)


def test_flip_moves_boxes_with_pixels():
    data = make_shapes(4, seed=7)
    flip = torch.tensor([True, False, True, False])
    images, boxes = ch06.flip_horizontal(data.images.float(), data.boxes, flip)
    assert torch.equal(images[0], data.images[0].float().flip(-1)) and torch.equal(boxes[1], data.boxes[1])
    x1 = int(data.boxes[0, 0, 0])
    assert boxes[0, 0, 2].item() == 64 - x1


# --- 데이터 읽기 ------------------------------------------------------------------------------
def write_jpeg(path, width, height, box, color=(0, 0, 255)):
    """회색 바탕에 꽉 찬 사각형 하나를 그린 JPEG. box = (x1, y1, x2, y2) 픽셀."""
    image = np.full((height, width, 3), 200, np.uint8)
    cv2.rectangle(image, box[:2], (box[2] - 1, box[3] - 1), color, thickness=-1)
    cv2.imwrite(str(path), image)


def test_yolo_folder_with_real_jpegs_letterboxes_boxes(tmp_path):
    root = tmp_path / "pets"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\nnames:\n  0: cat\n  1: dog\n")
    # 가로로 긴 200x100 사진: 배율 0.32, 위아래 여백 (64-32)/2 = 16
    write_jpeg(root / "images/train/wide.jpg", 200, 100, (50, 20, 150, 80))
    (root / "labels/train/wide.txt").write_text("1 0.5 0.5 0.5 0.6\n")
    # 세로로 긴 50x100 사진: 배율 0.64, 왼쪽 여백 (64-32)/2 = 16
    write_jpeg(root / "images/train/tall.jpg", 50, 100, (0, 0, 25, 50))
    (root / "labels/train/tall.txt").write_text("0 0.25 0.25 0.5 0.5\n\n")
    write_jpeg(root / "images/train/empty.jpg", 64, 64, (0, 0, 1, 1), color=(200, 200, 200))  # 라벨 없음
    write_jpeg(root / "images/val/v.jpg", 100, 100, (10, 10, 60, 60))
    (root / "labels/val/v.txt").write_text("0 0.35 0.35 0.5 0.5\n")
    (root / "images/train/broken.jpg").write_bytes(b"not a jpeg")
    sets, classes = read_yolo_folder(root, 64)
    assert classes == ["cat", "dog"]
    train = sets["train"]
    assert len(train) == 3 and len(sets["val"]) == 1  # broken.jpg 는 건너뜀
    names = ["empty", "tall", "wide"]  # 파일 이름순
    wide, tall = names.index("wide"), names.index("tall")
    assert train.boxes[wide, 0].tolist() == pytest.approx([16, 16 + 6.4, 48, 16 + 25.6], abs=0.01)
    assert train.boxes[tall, 0].tolist() == pytest.approx([16, 0, 16 + 16, 32], abs=0.01)
    assert train.labels[names.index("empty")].tolist() == [-1]  # 배경 이미지
    # 상자 안은 빨간 사각형(RGB), 상자 바로 밖은 회색 바탕이나 레터박스 여백
    image = train.images[wide].permute(1, 2, 0).numpy().astype(int)
    assert image[32, 32].tolist() == pytest.approx([255, 0, 0], abs=40)
    assert image[10, 32].tolist() == pytest.approx([114, 114, 114], abs=3)
    image = train.images[tall].permute(1, 2, 0).numpy().astype(int)
    assert image[16, 24].tolist() == pytest.approx([255, 0, 0], abs=40)
    assert image[40, 24].tolist() == pytest.approx([200, 200, 200], abs=40)


def test_letterbox_then_inverse_returns_original_boxes():
    image = np.zeros((77, 131, 3), np.uint8)
    canvas, scale_x, scale_y, left, top = letterbox(image, 64)
    assert canvas.shape == (64, 64, 3) and left == 0 and top > 0
    box = np.array([[10.0, 20.0, 100.0, 70.0]])
    moved = box * [scale_x, scale_y, scale_x, scale_y] + [left, top, left, top]
    back = (moved - [left, top, left, top]) / [scale_x, scale_y, scale_x, scale_y]
    assert back == pytest.approx(box)


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.2", "필드가 4개"),
    ("0 0.5 0.5 0.2 0.2 0.1", "필드가 6개"),
    ("7 0.5 0.5 0.2 0.2", "클래스 번호 7"),
    ("-1 0.5 0.5 0.2 0.2", "클래스 번호 -1"),
    ("0 0.95 0.5 0.2 0.2", "이미지 밖"),
    ("0 0.5 0.5 0 0.2", "이미지 밖"),
    ("0 x 0.5 0.2 0.2", "숫자가 아닌"),
])
def test_bad_label_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "a.txt"
    path.write_text("1 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(UserError) as error:
        parse_yolo_label(path, 2, 100, 100)
    text = str(error.value)
    assert str(path) in text and "2번째 줄" in text and message in text and "\n" not in text


def test_voc_folder(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for index in range(4):
        write_jpeg(root / "JPEGImages" / f"{index}.jpg", 128, 64, (10, 10, 40, 50))
        (root / "Annotations" / f"{index}.xml").write_text(
            f"<annotation><filename>{index}.jpg</filename><object><name>{'bird' if index else 'cat'}</name>"
            "<bndbox><xmin>11</xmin><ymin>11</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object></annotation>")
    sets, classes = read_voc_folder(root, 64)
    assert classes == ["bird", "cat"]
    data = sets["all"]
    # 배율 0.5, 위 여백 16; VOC 좌표는 1부터 세므로 xmin 11 → 10
    assert data.boxes[0, 0].tolist() == pytest.approx([5, 16 + 5, 20, 16 + 25], abs=0.01)
    assert data.labels[:, 0].tolist() == [1, 0, 0, 0]


def test_bad_label_folder_is_one_line_exit_2(tmp_path):
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("cat\n")
    for index in range(3):
        write_jpeg(root / "images" / f"{index}.jpg", 32, 32, (4, 4, 20, 20))
        (root / "labels" / f"{index}.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    (root / "labels" / "1.txt").write_text("0 0.5 0.5 0.3 0.3\n3 0.5 0.5 0.3 0.3\n")
    result = run_script(ch06.__file__, "--data", "real", "--data-dir", str(root), "--device", "cpu",
                        "--out-dir", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and "1.txt" in error_lines[0] and "2번째 줄" in error_lines[0]


# --- 학습 확인과 --predict -------------------------------------------------------------------
@pytest.mark.slow
def test_short_run_beats_untrained_model_and_predicts(tmp_path, capsys):
    """짧은 학습(1,500장 × 4 epoch)의 시험 mAP@0.5 가 학습하지 않은 모델보다 0.3 이상 높아야 합니다.

    학습하지 않은 모델은 0.05 미만 (무작위 상자). 같은 설정의 전체 학습은 epoch 1 에서 이미 검증 mAP@0.5
    0.75 를 넘으므로(16,000장 기준) 0.3 은 넉넉한 여유이면서, 손실이나 해독이 깨지면 넘을 수 없는 선입니다.
    '조용한 실패' 경고는 학습하지 않은 모델에는 뜨고, 학습한 모델의 실행 끝에는 뜨지 않아야 합니다.
    """
    torch.manual_seed(0)
    config = ch06.Config(data="offline", device="cpu", out_dir=str(tmp_path), train_size=1500, val_size=200,
                         test_size=200, epochs=4, image_size=64)
    untrained = ch06.build_model(5, 2, config.width, 64)
    test_set = make_shapes(200, seed=20240601)
    baseline = ch06.evaluate(untrained, test_set, config, torch.device("cpu"))["map50"]
    _, detections = ch06.predict_batches(untrained, test_set, 64, torch.device("cpu"))
    untrained_metrics = {"test_map50": baseline, "test_boxes": int((test_set.labels >= 0).sum())}
    warning = ch06.silent_failure_warning(untrained_metrics, detections, config, epochs=4)
    assert warning is not None and warning.startswith("경고:") and "--epochs" in warning
    assert "\n" not in warning and warning in capsys.readouterr().out  # 한 줄로 출력도 함
    metrics = ch06.main(config)
    assert baseline < 0.05
    assert metrics["test_map50"] > baseline + 0.3, (baseline, metrics)
    assert "경고:" not in capsys.readouterr().out
    assert math.isfinite(metrics["train_map50"])
    for name in ("grid_target.png", "history.png", "pr_curves.png", "detections.png", "ap_interpolation.png"):
        assert (tmp_path / name).stat().st_size > 1000

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(test_set.images[0].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2BGR))
    cpu = torch.device("cpu")
    record = ch06.predict(ch06.Config(predict=str(photo), out_dir=str(tmp_path), device="cpu"), cpu)
    saved = json.loads((tmp_path / "prediction.json").read_text(encoding="utf-8"))
    assert saved == record and (tmp_path / "prediction.png").stat().st_size > 1000
    assert all(d["class"] in SHAPE_CLASSES for d in saved["detections"])
    for bad in (tmp_path / "missing.jpg", tmp_path, tmp_path / "history.csv"):
        with pytest.raises(UserError):
            ch06.predict(ch06.Config(predict=str(bad), out_dir=str(tmp_path), device="cpu"), cpu)


# --- 사진 폴더: 증강, 예산, 실패 경고, 잘못된 라벨 -----------------------------------------------
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # 클래스마다 한 색 (RGB)


def write_photo_folder(root, count=8, size=64, seed=0):
    """YOLO 폴더 (PNG, 분할 없음): 사진마다 클래스 색으로 꽉 찬 사각형 하나. 상자 = 사각형의 픽셀."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("red\ngreen\nblue\nyellow\n")
    for index in range(count):
        label = index % len(COLOURS)
        w, h = rng.integers(size // 4, size // 2, 2)
        x1, y1 = rng.integers(0, size - w), rng.integers(0, size - h)
        image = np.full((size, size, 3), 128, np.uint8)
        image[y1:y1 + h, x1:x1 + w] = COLOURS[label]
        cv2.imwrite(str(root / "images" / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cx, cy = (x1 + w / 2) / size, (y1 + h / 2) / size
        (root / "labels" / f"{index}.txt").write_text(f"{label} {cx} {cy} {w / size} {h / size}\n")
    return root


@pytest.mark.parametrize("mosaic", [0.0, 1.0])
def test_photo_augmentation_keeps_boxes_on_their_rectangles(tmp_path, mosaic):
    """모자이크·배율·이동·뒤집기 뒤에도 상자 = 그 색 사각형의 픽셀 범위 (±1.5 px), 상자 안은 그 색.

    색을 지키려고 HSV 는 끕니다 (HSV 는 아래 시험). 한 장에 같은 색이 둘일 수 있어(모자이크) 상자를 3 px
    넓힌 창 안의 픽셀만 봅니다.
    """
    from utils.data.detection import random_photo_batch

    sets, _ = read_yolo_folder(write_photo_folder(tmp_path / "photos"), 64)
    data = sets["all"]
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(4):
        images, boxes, labels = random_photo_batch(data, torch.arange(len(data)), generator, mosaic=mosaic,
                                                   hsv=(0.0, 0.0, 0.0))
        assert images.shape == (len(data), 3, 64, 64) and 0 <= images.min() and images.max() <= 1
        for n in range(len(data)):
            pixels = (images[n].permute(1, 2, 0).numpy() * 255).astype(int)  # (H, W, 3)
            for box, label in zip(boxes[n][labels[n] >= 0].tolist(), labels[n][labels[n] >= 0].tolist()):
                colour = np.abs(pixels - np.array(COLOURS[label])).max(-1) < 60  # (H, W) 그 색인 픽셀
                x1, y1, x2, y2 = box
                window = np.zeros_like(colour)
                rows = slice(max(int(y1) - 3, 0), int(np.ceil(y2)) + 3)
                window[rows, max(int(x1) - 3, 0): int(np.ceil(x2)) + 3] = True
                ys, xs = np.nonzero(colour & window)
                assert len(xs), (n, box)
                found = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert found == pytest.approx(box, abs=1.5), (n, label, box, found)
                checked += 1
    # 배율 0.5~1.5, 이동 ±10% 에서는 상자 대부분이 남아야 함 (모자이크면 한 장에 여럿). 엉뚱한 곳으로 간
    # 상자는 창 밖으로 나가 버려지므로, 이 개수가 그런 잘못을 잡습니다.
    assert checked >= (48 if mosaic else 26), checked


def test_photo_augmentation_without_scale_is_the_image_or_its_mirror(tmp_path):
    """배율 1, 이동 0, 모자이크·HSV 없음: 픽셀 중심 좌표(0.5)까지 맞으면 결과가 원본이나 좌우 거울상과
    정확히 같음."""
    from utils.data.detection import random_photo_batch

    data = read_yolo_folder(write_photo_folder(tmp_path / "photos"), 64)[0]["all"]
    generator = torch.Generator().manual_seed(1)
    images, boxes, _ = random_photo_batch(data, torch.arange(len(data)), generator, mosaic=0.0,
                                          scale=(1.0, 1.0), translate=0.0, hsv=(0.0, 0.0, 0.0))
    restored = (images * 255).round().to(torch.uint8)
    mirrored = 0
    for n in range(len(data)):
        if torch.equal(restored[n], data.images[n].flip(-1)):
            mirrored += 1
            x1, y1, x2, y2 = data.boxes[n, 0].tolist()
            assert boxes[n, 0].tolist() == pytest.approx([64 - x2, y1, 64 - x1, y2], abs=1e-4)
        else:
            assert torch.equal(restored[n], data.images[n])
            assert boxes[n, 0].tolist() == pytest.approx(data.boxes[n, 0].tolist(), abs=1e-4)
    assert 0 < mirrored < len(data)


def test_hsv_matrices_identity_grey_and_brightness():
    from utils.data.detection import LUMA, hsv_matrices

    rgb = torch.tensor([0.8, 0.3, 0.1])
    gains = torch.tensor([[0.0, 1, 1], [0, 0, 1], [0, 1, 0.5], [0.25, 1, 1]])  # (색상 바퀴, 채도, 명도)
    identity, grey, darker, hue = hsv_matrices(gains)
    assert torch.allclose(identity, torch.eye(3), atol=1e-6)
    luma = float(torch.tensor(LUMA) @ rgb)
    assert torch.allclose(grey @ rgb, torch.full((3,), luma), atol=1e-6)  # 채도 0 = 회색, 밝기는 그대로
    assert torch.allclose(darker @ rgb, rgb / 2, atol=1e-6)
    assert float(torch.tensor(LUMA) @ (hue @ rgb)) == pytest.approx(luma, abs=1e-5)  # 색상만 돌림
    assert not torch.allclose(hue @ rgb, rgb, atol=0.05)


def test_budget_by_images_on_a_small_folder(tmp_path, capsys):
    """사진 폴더: 자동 설정(192 px, 배치 16, 강한 증강, EMA)과 '본 이미지 수' 예산 → epoch 수."""
    root = write_photo_folder(tmp_path / "photos", count=12)
    config = ch06.choose_recipe(ch06.Config(data_dir=str(root), device="cpu", out_dir=str(tmp_path),
                                            train_images=100))
    assert (config.image_size, config.grid_stride, config.batch_size) == (192, 32, 16)
    assert config.augment == "photo" and config.ema_decay > 0
    # 사진 폴더는 예산을 끝까지 (조기 종료 끔): 검증 몇 장의 mAP 가 한참 멈춰 있어도 멈추지 않음
    assert config.patience == 0
    flat = ch06.training.History(tmp_path / "flat.csv")
    for epoch in range(60):
        flat.rows.append({"epoch": epoch, "val_map50": 0.5})
    assert not ch06.early_stop(flat, "map50", config.patience, 0.5)
    assert ch06.early_stop(flat, "map50", 50, 0.5)  # 도형의 기본 (50 epoch 동안 최고를 못 넘음)
    config = ch06.dataclasses.replace(config, image_size=64)  # 예산 계산은 크기와 상관없음: 빠르게
    data = ch06.prepare_data(config, tmp_path)
    train_count = len(data.train)
    model = ch06.build_model(4, 2, config.width, config.image_size, config.grid_stride)
    cpu = torch.device("cpu")
    assert ch06.plan_epochs(config, data, model, cpu) == math.ceil(100 / train_count)
    assert f"{train_count}장 × {math.ceil(100 / train_count)}바퀴" in capsys.readouterr().out
    # --train-images 0(자동): 걸음 수 기준(도형 기본값의 3,000 걸음 × 배치)과 시간 상한 중 작은 쪽
    auto = ch06.dataclasses.replace(config, train_images=0)
    assert ch06.train_budget(auto) == min(ch06.OFFLINE_STEPS * 16, ch06.PHOTO_TRAIN_IMAGES) == 40_000
    assert ch06.train_budget(ch06.dataclasses.replace(auto, batch_size=4)) == ch06.OFFLINE_STEPS * 4
    assert ch06.plan_epochs(auto, data, model, cpu) == math.ceil(40_000 / train_count)
    # --epochs N 을 주면 예산 대신 정확히 N
    assert ch06.plan_epochs(ch06.dataclasses.replace(config, epochs=5), data, model, cpu) == 5
    shapes = ch06.choose_recipe(ch06.Config(data="offline", device="cpu", out_dir=str(tmp_path)))
    assert (shapes.image_size, shapes.grid_stride, shapes.augment, shapes.ema_decay) == (64, 8, "off", 0.0)
    assert ch06.train_budget(shapes) == 16_000 * 12  # 도형: 16,000장 × 12바퀴 (벤치마크의 학습 길이)


@pytest.mark.parametrize("case", ["yolo-class", "yolo-outside", "voc-outside"])
def test_bad_labels_stop_before_training(tmp_path, capsys, case):
    """클래스 번호가 classes.txt 밖, 정규화 상자가 0~1 밖, VOC 상자가 이미지 밖
    → 학습 전에 파일 이름을 말하는 한 줄, 종료 코드 2."""
    if case.startswith("yolo"):
        root = write_photo_folder(tmp_path / "photos", count=4)
        bad = root / "labels" / "2.txt"
        bad.write_text("7 0.5 0.5 0.2 0.2\n" if case == "yolo-class" else "0 0.9 0.5 0.4 0.2\n")
    else:
        root = tmp_path / "voc"
        (root / "JPEGImages").mkdir(parents=True)
        (root / "Annotations").mkdir()
        for index in range(4):
            write_jpeg(root / "JPEGImages" / f"{index}.jpg", 100, 80, (10, 10, 40, 50))
            xmax = 140 if index == 2 else 40  # 2.xml: 너비 100 인 이미지에 xmax 140
            (root / "Annotations" / f"{index}.xml").write_text(
                f"<annotation><filename>{index}.jpg</filename><object><name>cat</name><bndbox><xmin>11</xmin>"
                f"<ymin>11</ymin><xmax>{xmax}</xmax><ymax>50</ymax></bndbox></object></annotation>")
        bad = root / "Annotations" / "2.xml"
    out_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        ch06.run(ch06.main, ch06.Config, argv=["--data", "real", "--data-dir", str(root), "--device", "cpu",
                                              "--out-dir", str(out_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and str(bad) in lines[0], lines
    assert not (out_dir / "last.pt").exists()  # 학습 전에 멈춤


def test_photo_folder_interrupt_then_resume_equals_uninterrupted(tmp_path, monkeypatch):
    """사진 증강(모자이크 등)의 난수도 체크포인트에 들어가므로, epoch 2 에서 Ctrl+C → --resume 한 결과가
    끊지 않은 실행과 같아야 합니다 (EMA 가중치도 last.pt 에서 되살아나야 같음)."""
    root = write_photo_folder(tmp_path / "photos", count=8)
    flags = ["--data-dir", str(root), "--device", "cpu", "--image-size", "64", "--epochs", "3",
             "--batch-size", "4"]

    def run_chapter(out_dir, *extra):
        ch06.run(ch06.main, ch06.Config, argv=[*flags, "--out-dir", str(out_dir), *extra])
        return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]

    expected = run_chapter(tmp_path / "straight")
    monkeypatch.setenv("TUTORIAL_SIGINT_AT", "epoch 2:1")
    with pytest.raises(SystemExit) as exit_info:
        run_chapter(tmp_path / "stopped")
    assert exit_info.value.code == 130
    monkeypatch.delenv("TUTORIAL_SIGINT_AT")
    assert run_chapter(tmp_path / "stopped", "--resume") == expected
    # 시험 숫자는 best.pt(이른 epoch 일 수 있음)에서 나오므로, 마지막 가중치와 EMA 도 비트 하나까지 같아야 함
    straight, resumed = (torch.load(d / "last.pt", weights_only=True) for d in (tmp_path / "straight",
                                                                                 tmp_path / "stopped"))
    assert all(torch.equal(a, b) for a, b in zip(straight["model"].values(), resumed["model"].values()))
    assert all(torch.equal(a, b) for a, b in zip(straight["extra"]["ema"].values(),
                                                 resumed["extra"]["ema"].values()))
