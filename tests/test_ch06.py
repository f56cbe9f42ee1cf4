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
def test_short_run_beats_untrained_model_and_predicts(tmp_path):
    """짧은 학습(1,500장 × 4 epoch)의 시험 mAP@0.5 가 학습하지 않은 모델보다 0.3 이상 높아야 합니다.

    학습하지 않은 모델은 0.05 미만 (무작위 상자). 같은 설정의 전체 학습은 epoch 1 에서 이미 검증 mAP@0.5
    0.75 를 넘으므로(16,000장 기준) 0.3 은 넉넉한 여유이면서, 손실이나 해독이 깨지면 넘을 수 없는 선입니다.
    """
    torch.manual_seed(0)
    config = ch06.Config(data="offline", device="cpu", out_dir=str(tmp_path), train_size=1500, val_size=200,
                         test_size=200, epochs=4)
    untrained = ch06.build_model(5, 2, config.width, 64)
    test_set = make_shapes(200, seed=20240601)
    baseline = ch06.evaluate(untrained, test_set, config, torch.device("cpu"))["map50"]
    metrics = ch06.main(config)
    assert baseline < 0.05
    assert metrics["test_map50"] > baseline + 0.3, (baseline, metrics)
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
