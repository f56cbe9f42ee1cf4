"""물체 검출(object detection) 데이터: YOLO 폴더, Pascal VOC 폴더, 절차적 도형(오프라인 기본값).

06장이 씁니다. 모든 데이터는 같은 모양의 텐서 묶음(`DetectionSet`)으로 돌아옵니다.

    images : (N, 3, H, W) uint8 RGB, H = W = image_size (레터박스로 맞춤)
    boxes  : (N, M, 4) float32, 픽셀 단위 모서리 형식 (x1, y1, x2, y2); M = 이미지당 최대 물체 수
    labels : (N, M) int64, 클래스 번호; 물체가 없는 자리는 -1 (패딩)

읽는 형식
    - YOLO 폴더 (Ultralytics·Roboflow 가 내보내는 형식): 이미지마다 같은 이름의 `.txt`, 한 줄에 물체
      하나 `class cx cy w h` (0~1 로 정규화한 중심·크기). 클래스 이름은 `classes.txt`(한 줄에 하나)
      또는 `data.yaml` 의 `names`. 폴더 배치는 세 가지를 받습니다:
        root/images/{train,val}/*.jpg + root/labels/{train,val}/*.txt
        root/{train,val}/images/*.jpg + root/{train,val}/labels/*.txt
        root/images/*.jpg + root/labels/*.txt            (분할이 없으면 시드로 나눔)
      라벨 파일이 없는 이미지는 물체가 없는 배경(background) 이미지입니다 (YOLO 도구들의 관례).
    - Pascal VOC: root/JPEGImages/*.jpg + root/Annotations/*.xml (xml 은 표준 라이브러리로 읽는
      데이터일 뿐 코드가 아닙니다). ImageSets/Main/{train,val}.txt 가 있으면 그 분할을 씁니다.
    - 절차적 도형: 5 종류 도형 1~5개, 무늬와 잡음이 있는 배경, 일부 겹침, 픽셀 단위로 정확한 상자.

사진 폴더의 학습 증강(augmentation, `random_photo_batch`): 모자이크(mosaic) → 무작위 배율·이동·좌우
뒤집기 → HSV 흔들기. 상자는 픽셀과 똑같은 변환을 거칩니다 (tests/test_ch06.py 가 그린 사각형으로 확인).

잘못된 라벨 줄(필드 수, 클래스 번호, 이미지 밖 상자)은 파일과 줄 번호를 말하는 한 줄 UserError.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.runtime import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LETTERBOX_FILL = 114  # 레터박스 여백의 회색: YOLO 계열 도구들이 쓰는 값 (0~255)
BOX_TOLERANCE = 0.01  # 정규화 좌표가 0~1 을 이만큼 넘는 것은 반올림 오차로 보고 잘라냄

SHAPE_CLASSES = ["ellipse", "rectangle", "triangle", "diamond", "cross"]
SHAPE_MIN_SIZE = 0.16  # 도형 한 변의 최소 길이 (이미지 변의 비율): 64 px 에서 약 10 px
SHAPE_MAX_SIZE = 0.44  # 최대 길이: 64 px 에서 약 28 px
SHAPE_MAX_OVERLAP = 0.4  # (두 상자의 교집합 / 작은 상자 넓이) 상한: 뒤의 도형이 앞의 것을 다 가리지 않게
TEST_SEED = 20240601  # 시험 세트의 시드: --seed 와 상관없이 늘 같은 시험 세트 (실행 사이 비교용)


@dataclass
class DetectionSet:
    """이미지와 상자: images (N,3,H,W) uint8, boxes (N,M,4) float32 픽셀 xyxy, labels (N,M) int64.

    labels 의 -1 은 빈 자리(패딩)입니다: 이미지마다 물체 수가 달라 M 에 맞춰 채운 것.
    """

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> DetectionSet:
        return DetectionSet(self.images[index], self.boxes[index], self.labels[index])


@dataclass
class DetectionData:
    train: DetectionSet
    val: DetectionSet  # best.pt 를 고르는 데만 씀
    test: DetectionSet  # 마지막 평가에만 씀 (held-out)
    classes: list[str]
    name: str  # 실행 기록에 남는 데이터 이름


def pad_targets(box_lists: list[np.ndarray],
                label_lists: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """이미지마다 개수가 다른 상자 목록 → (N, M, 4), (N, M) 텐서 (빈 자리: 상자 0, 라벨 -1)."""
    count = len(box_lists)
    most = max([len(b) for b in box_lists] + [1])
    boxes = torch.zeros(count, most, 4, dtype=torch.float32)
    labels = torch.full((count, most), -1, dtype=torch.int64)
    for index, (box, label) in enumerate(zip(box_lists, label_lists)):
        if len(box):
            boxes[index, : len(box)] = torch.as_tensor(np.asarray(box, dtype=np.float32))
            labels[index, : len(label)] = torch.as_tensor(np.asarray(label, dtype=np.int64))
    return boxes, labels


# ---------------------------------------------------------------------------
# 절차적 도형 (오프라인 기본값)
# ---------------------------------------------------------------------------
def _textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """부드러운 색 얼룩 + 가는 줄무늬 몇 개: 단색 배경이면 '배경이 아닌 곳 = 물체' 로 너무 쉬워집니다."""
    coarse = rng.uniform(0.25, 0.75, size=(4, 4, 3)).astype(np.float32)  # 4x4 격자의 색 → 부드럽게 확대
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(2, 6)):  # 방해물(distractor): 도형이 아닌 직선
        start = tuple(int(v) for v in rng.integers(0, size, 2))
        end = tuple(int(v) for v in rng.integers(0, size, 2))
        color = tuple(float(v) for v in rng.uniform(0.2, 0.8, 3))
        cv2.line(image, start, end, color, thickness=1)
    return image


def _shape_polygon(kind: str, x1: float, y1: float, w: float, h: float) -> list[np.ndarray]:
    """상자 (x1, y1, w, h) 를 꽉 채우는 도형의 다각형들 (좌표는 픽셀)."""
    x2, y2, cx, cy = x1 + w, y1 + h, x1 + w / 2, y1 + h / 2
    if kind == "rectangle":
        return [np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])]
    if kind == "triangle":
        return [np.array([[cx, y1], [x2, y2], [x1, y2]])]
    if kind == "diamond":
        return [np.array([[cx, y1], [x2, cy], [cx, y2], [x1, cy]])]
    if kind == "cross":  # 두께가 변의 1/3 인 더하기(+) 모양
        tw, th = w / 3, h / 3
        return [np.array([[cx - tw / 2, y1], [cx + tw / 2, y1], [cx + tw / 2, y2], [cx - tw / 2, y2]]),
                np.array([[x1, cy - th / 2], [x2, cy - th / 2], [x2, cy + th / 2], [x1, cy + th / 2]])]
    raise ValueError(kind)


def _draw_shape_mask(kind: str, x1: float, y1: float, w: float, h: float, size: int) -> np.ndarray:
    """도형 하나의 (size, size) bool 마스크. 상자는 이 마스크의 픽셀 범위에서 잽니다 (그래서 정확함)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    shift = 4  # 부분 픽셀 좌표: OpenCV 는 정수에 2^shift 를 곱한 값을 받음
    scale = 1 << shift
    if kind == "ellipse":
        center = (int(round((x1 + w / 2 - 0.5) * scale)), int(round((y1 + h / 2 - 0.5) * scale)))
        axes = (int(round((w / 2 - 0.5) * scale)), int(round((h / 2 - 0.5) * scale)))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1, thickness=-1, shift=shift)
    else:
        # 픽셀 (i, j) 의 중심은 (i+0.5, j+0.5): 다각형 꼭짓점을 0.5 당겨 상자 안쪽 픽셀만 칠함
        for polygon in _shape_polygon(kind, x1, y1, w, h):  # 따로 칠함: 한 번에 주면 겹친 곳이 비워짐
            cv2.fillPoly(mask, [np.round((polygon - 0.5) * scale).astype(np.int32)], 1, shift=shift)
    return mask.astype(bool)


def _overlap_ok(box: np.ndarray, others: list[np.ndarray]) -> bool:
    for other in others:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
        if iw * ih / smaller > SHAPE_MAX_OVERLAP:
            return False
    return True


def make_shapes_image(rng: np.random.Generator, size: int = 64, max_objects: int = 5,
                      grid_size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """도형 이미지 한 장 → (image (H,W,3) uint8, boxes (K,4) 픽셀 xyxy, labels (K,)).

    물체의 중심은 서로 다른 격자 칸(grid cell)에 놓습니다: YOLOv1 은 칸마다 물체 하나만 맡을 수
    있으므로, 이 규칙이 없으면 모델이 아니라 데이터 때문에 놓치는 물체가 생깁니다 (실제 데이터에서는
    06장의 `encode_targets` 가 그런 충돌을 세어 알려 줍니다).
    """
    image = _textured_background(rng, size)
    boxes, labels, used_cells = [], [], set()
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(30):  # 자리가 안 나면 물체 수를 줄임
            w, h = rng.uniform(SHAPE_MIN_SIZE, SHAPE_MAX_SIZE, 2) * size
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            kind = int(rng.integers(len(SHAPE_CLASSES)))
            mask = _draw_shape_mask(SHAPE_CLASSES[kind], x1, y1, w, h, size)
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
            cell = (int((box[1] + box[3]) / 2 / size * grid_size),  # (행, 열)
                    int((box[0] + box[2]) / 2 / size * grid_size))
            if cell in used_cells or not _overlap_ok(box, boxes):
                continue
            # 배경과 구별되는 색: 배경 평균에서 한 채널 이상이 충분히 떨어지게
            background = image[mask].mean(axis=0)
            color = rng.uniform(0, 1, 3)
            while np.abs(color - background).max() < 0.35:
                color = rng.uniform(0, 1, 3)
            image[mask] = color
            boxes.append(box)
            labels.append(kind)
            used_cells.add(cell)
            break
    image = image + rng.normal(0, 0.04, image.shape)  # 픽셀 잡음: 가장자리가 매끈하지 않게
    image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return image, np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def make_shapes(count: int, seed: int, image_size: int = 64, max_objects: int = 5,
                grid_size: int = 8) -> DetectionSet:
    """절차적 도형 이미지 `count` 장. 같은 seed → 같은 이미지와 상자 (전역 난수는 건드리지 않음)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    box_lists, label_lists = [], []
    for index in range(count):
        images[index], boxes, labels = make_shapes_image(rng, image_size, max_objects, grid_size)
        box_lists.append(boxes)
        label_lists.append(labels)
    boxes, labels = pad_targets(box_lists, label_lists)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N,H,W,C) → (N,C,H,W)
    return DetectionSet(images, boxes, labels)


# ---------------------------------------------------------------------------
# 이미지 한 장 읽기와 레터박스
# ---------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray | None:
    """이미지 파일 → (H, W, 3) uint8 RGB. 이미지가 아니거나 비어 있으면 None.

    imdecode(np.fromfile(...)): cv2.imread 와 달리 Windows 의 한글 경로도 읽습니다. 픽셀만 읽으며
    파일 속 어떤 코드도 실행하지 않습니다.
    """
    try:
        buffer = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None  # BGR 또는 None
    if image is None or image.size == 0:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float, float]:
    """가로세로 비율을 지키며 size x size 에 맞추고 남는 곳을 회색으로 채웁니다 (letterbox).

    반환: (새 이미지 (size,size,3), x 배율, y 배율, 왼쪽 여백, 위 여백).
    상자 변환: x' = x · x배율 + 왼쪽 여백, y' = y · y배율 + 위 여백 (`letterbox_boxes`).
    배율을 가로·세로 따로 돌려주는 까닭: 반올림한 새 크기 / 원래 크기가 가로와 세로에서 조금 다름.
    """
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # 줄일 때 계단 무늬가 적은 보간
    resized = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    pad_left, pad_top = (size - new_width) // 2, (size - new_height) // 2
    canvas = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.uint8)
    canvas[pad_top: pad_top + new_height, pad_left: pad_left + new_width] = resized
    return canvas, new_width / width, new_height / height, float(pad_left), float(pad_top)


def letterbox_boxes(boxes: np.ndarray, scale_x: float, scale_y: float, pad_left: float,
                    pad_top: float) -> np.ndarray:
    """원본 픽셀 xyxy 상자 (K, 4) → 레터박스 이미지의 픽셀 xyxy 상자."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * scale_x + pad_left
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * scale_y + pad_top
    return boxes


# ---------------------------------------------------------------------------
# YOLO 폴더
# ---------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _yaml_names(path: Path) -> list[str] | None:
    """data.yaml 의 `names` 만 읽습니다 (PyYAML 없이). 받는 꼴: `names: [a, b]`, `- a` 목록, `0: a` 사전."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^names\s*:\s*(.*)$", line)
        if not match:
            continue
        rest = match.group(1).split("#")[0].strip()
        if rest.startswith("["):
            return [n.strip().strip("'\"") for n in rest.strip("[]").split(",") if n.strip()]
        names: dict[int, str] = {}
        for item in lines[index + 1:]:
            if not item.strip() or item.strip().startswith("#"):
                continue
            if not item.startswith((" ", "\t", "-")):
                break
            list_item = re.match(r"^\s*-\s*(.+)$", item)
            dict_item = re.match(r"^\s*(\d+)\s*:\s*(.+)$", item)
            if list_item:
                names[len(names)] = list_item.group(1).strip().strip("'\"")
            elif dict_item:
                names[int(dict_item.group(1))] = dict_item.group(2).split("#")[0].strip().strip("'\"")
        return [names[k] for k in sorted(names)] or None
    return None


def read_class_names(root: Path) -> list[str]:
    """classes.txt (한 줄에 이름 하나) 또는 data.yaml 의 names. 둘 다 없으면 UserError."""
    if (root / "classes.txt").is_file():
        names = [line.strip() for line in (root / "classes.txt").read_text(encoding="utf-8").splitlines()]
        names = [name for name in names if name]
    else:
        yaml_path = next((root / n for n in ("data.yaml", "dataset.yaml") if (root / n).is_file()), None)
        names = _yaml_names(yaml_path) if yaml_path else None
    if not names:
        raise UserError(f"{root} 에 클래스 이름이 없습니다: classes.txt (한 줄에 이름 하나) 또는 "
                        "data.yaml 의 names 를 두세요.")
    return names


def parse_yolo_label(path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO 라벨 파일 → (boxes (K,4) 원본 픽셀 xyxy, labels (K,)).

    잘못된 줄은 파일과 줄 번호를 말하는 한 줄 UserError.
    """
    boxes, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} 의 {number}번째 줄 '{line.strip()[:60]}'"
        if len(fields) != 5:
            raise UserError(f"{where}: 필드가 {len(fields)}개입니다. 'class cx cy w h' 다섯 개여야 합니다 "
                            "(분할(segmentation) 라벨은 지원하지 않음).")
        try:
            class_id = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise UserError(f"{where}: 숫자가 아닌 값이 있습니다 "
                            "(클래스는 정수, 나머지는 0~1 실수).") from None
        if not 0 <= class_id < num_classes:
            raise UserError(f"{where}: 클래스 번호 {class_id} 가 범위 밖입니다 (클래스 {num_classes}개: "
                            f"0~{num_classes - 1}).")
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if not (np.isfinite([x1, y1, x2, y2]).all() and w > 0 and h > 0 and x1 >= -BOX_TOLERANCE
                and y1 >= -BOX_TOLERANCE and x2 <= 1 + BOX_TOLERANCE and y2 <= 1 + BOX_TOLERANCE):
            raise UserError(f"{where}: 상자가 이미지 밖에 있거나 크기가 0 이하입니다 "
                            "(cx, cy, w, h 는 이미지 크기로 나눈 0~1 값이어야 함).")
        x1, y1, x2, y2 = np.clip([x1, y1, x2, y2], 0, 1)
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        labels.append(class_id)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def _load_pairs(pairs: list[tuple[Path, Path | None]], image_size: int,
                read_labels) -> tuple[DetectionSet, list[Path]]:
    """(이미지 경로, 라벨 경로 또는 None) 목록 → 레터박스한 DetectionSet, 읽지 못한 이미지 목록."""
    images, box_lists, label_lists, unreadable = [], [], [], []
    for image_path, label_path in pairs:
        image = read_image(image_path)
        if image is None:
            unreadable.append(image_path)
            continue
        height, width = image.shape[:2]
        if label_path is None:  # 라벨 파일 없음 = 물체 없는 배경 이미지
            boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            boxes, labels = read_labels(label_path, width, height)
        canvas, scale_x, scale_y, pad_left, pad_top = letterbox(image, image_size)
        images.append(canvas)
        box_lists.append(letterbox_boxes(boxes, scale_x, scale_y, pad_left, pad_top))
        label_lists.append(labels)
    if not images:
        return DetectionSet(torch.empty(0, 3, image_size, image_size, dtype=torch.uint8),
                            torch.zeros(0, 1, 4), torch.full((0, 1), -1)), unreadable
    boxes, labels = pad_targets(box_lists, label_lists)
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N,H,W,C) → (N,C,H,W)
    return DetectionSet(stacked, boxes, labels), unreadable


def _yolo_split_folders(root: Path) -> dict[str, tuple[Path, Path]]:
    """분할 이름 → (이미지 폴더, 라벨 폴더). 세 가지 배치를 차례로 찾습니다."""
    splits = {}
    for split in ("train", "val", "valid", "test"):
        for images, labels in ((root / "images" / split, root / "labels" / split),
                               (root / split / "images", root / split / "labels")):
            if _image_files(images):
                splits["val" if split == "valid" else split] = (images, labels)
                break
    if not splits and _image_files(root / "images"):
        splits["all"] = (root / "images", root / "labels")
    return splits


def is_yolo_folder(root: Path) -> bool:
    return Path(root).is_dir() and bool(_yolo_split_folders(Path(root)))


def is_voc_folder(root: Path) -> bool:
    return (Path(root) / "JPEGImages").is_dir() and (Path(root) / "Annotations").is_dir()


def _report_unreadable(unreadable: list[Path]) -> None:
    if unreadable:
        print(f"[데이터] 이미지로 읽을 수 없는 파일 {len(unreadable)}개를 건너뜁니다 (예: {unreadable[0]}).")


def read_yolo_folder(root: str | Path, image_size: int) -> tuple[dict[str, DetectionSet], list[str]]:
    """YOLO 폴더 → ({분할 이름: DetectionSet}, 클래스 이름). 분할 이름은 train/val/test 또는 all."""
    root = Path(root)
    classes = read_class_names(root)
    sets, unreadable = {}, []
    for split, (image_dir, label_dir) in _yolo_split_folders(root).items():
        pairs = []
        for image_path in _image_files(image_dir):
            label_path = label_dir / (image_path.stem + ".txt")
            pairs.append((image_path, label_path if label_path.is_file() else None))
        read_labels = lambda path, width, height: parse_yolo_label(path, len(classes), width, height)
        sets[split], skipped = _load_pairs(pairs, image_size, read_labels)
        unreadable += skipped
    _report_unreadable(unreadable)
    return sets, classes


# ---------------------------------------------------------------------------
# Pascal VOC 폴더
# ---------------------------------------------------------------------------
def parse_voc_annotation(path: Path) -> tuple[str, list[tuple[str, list[float]]]]:
    """VOC xml 하나 → (이미지 파일 이름, [(클래스 이름, [x1, y1, x2, y2] 0부터 세는 픽셀)])."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise UserError(f"{path} 를 XML 로 읽을 수 없습니다 ({error}).") from None
    filename = (root.findtext("filename") or path.stem + ".jpg").strip()
    objects = []
    for index, obj in enumerate(root.iter("object"), start=1):
        name, box = (obj.findtext("name") or "").strip(), obj.find("bndbox")
        try:
            # VOC 좌표는 1부터 세는 픽셀 번호(양 끝 포함): 0부터 세는 모서리 좌표로 x1-1, x2 그대로
            values = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise UserError(f"{path} 의 {index}번째 object: name 과 bndbox(xmin, ymin, xmax, ymax)가 "
                            "있어야 합니다.") from None
        if not name or values[2] <= values[0] or values[3] <= values[1]:
            raise UserError(f"{path} 의 {index}번째 object: 이름이 없거나 상자 크기가 0 이하입니다.")
        objects.append((name, [values[0] - 1, values[1] - 1, values[2], values[3]]))
    return filename, objects


def read_voc_folder(root: str | Path, image_size: int) -> tuple[dict[str, DetectionSet], list[str]]:
    """Pascal VOC 폴더 → ({분할 이름: DetectionSet}, 클래스 이름 (classes.txt 가 없으면 이름순))."""
    root = Path(root)
    annotations = {}
    for xml_path in sorted((root / "Annotations").glob("*.xml")):
        filename, objects = parse_voc_annotation(xml_path)
        annotations[xml_path.stem] = (root / "JPEGImages" / filename, objects)
    if not annotations:
        raise UserError(f"{root / 'Annotations'} 에 .xml 파일이 없습니다.")
    if (root / "classes.txt").is_file():
        classes = read_class_names(root)
    else:
        classes = sorted({name for _, objects in annotations.values() for name, _ in objects})
    split_files = {s: root / "ImageSets" / "Main" / f"{s}.txt" for s in ("train", "val", "test")}
    if split_files["train"].is_file() and split_files["val"].is_file():
        splits = {s: [line.strip() for line in f.read_text().splitlines() if line.strip()]
                  for s, f in split_files.items() if f.is_file()}
    else:
        splits = {"all": sorted(annotations)}

    def read_labels(xml_path, width, height):
        _, objects = parse_voc_annotation(xml_path)
        for name, box in objects:
            if name not in classes:
                raise UserError(f"{xml_path}: 클래스 '{name}' 가 classes.txt 에 없습니다.")
            if box[0] < -1 or box[1] < -1 or box[2] > width + 1 or box[3] > height + 1:
                raise UserError(f"{xml_path}: '{name}' 상자 {box} 가 이미지({width}x{height}) 밖입니다.")
        boxes = np.array([np.clip(b, 0, [width, height, width, height]) for _, b in objects], np.float32)
        return boxes.reshape(-1, 4), np.array([classes.index(n) for n, _ in objects], dtype=np.int64)

    sets, unreadable = {}, []
    for split, stems in splits.items():
        pairs = [(annotations[s][0], root / "Annotations" / f"{s}.xml") for s in stems if s in annotations]
        sets[split], skipped = _load_pairs(pairs, image_size, read_labels)
        unreadable += skipped
    _report_unreadable(unreadable)
    return sets, classes


# ---------------------------------------------------------------------------
# 데이터 정책: 실제 폴더 → 없으면 오프라인 도형
# ---------------------------------------------------------------------------
def split_set(data: DetectionSet, fraction: float, seed: int) -> tuple[DetectionSet, DetectionSet]:
    """시드로 섞어 (나머지, fraction 만큼) 둘로 나눕니다. 적어도 한 장씩."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    count = min(max(1, round(len(data) * fraction)), len(data) - 1)
    return data.subset(order[count:]), data.subset(order[:count])


def folder_kind(mode: str, data_dir: str | Path, smoke: bool) -> str | None:
    """이번 실행이 읽을 실제 폴더의 형식: "YOLO", "Pascal VOC", 또는 None (도형을 씀).

    06장은 데이터를 읽기 전에 이것으로 입력 크기 등 '사진 폴더용 설정'을 고릅니다.
    """
    root = Path(data_dir)
    if mode == "offline" or smoke:
        return None
    if is_yolo_folder(root):
        return "YOLO"
    return "Pascal VOC" if is_voc_folder(root) else None


def load_detection_data(mode: str, data_dir: str, smoke: bool, seed: int, *, image_size: int,
                        grid_size: int, val_fraction: float, train_size: int, val_size: int,
                        test_size: int) -> DetectionData:
    """--data auto|real|offline 에 따라 YOLO/VOC 폴더 또는 절차적 도형.

    실제 폴더: train/ 과 val/ 이 있으면 val/ 을 시험(held-out) 세트로, train/ 에서 val_fraction 을
    떼어 검증 세트로 씁니다 (best.pt 를 시험 세트로 고르면 시험 점수가 부풀려짐). 분할이 없으면
    시드로 학습/검증/시험을 나눕니다.
    """
    root = Path(data_dir)
    kind = folder_kind(mode, root, smoke)
    if kind is not None:
        sets, classes = (read_yolo_folder if kind == "YOLO" else read_voc_folder)(root, image_size)
        if "train" in sets:
            train, val = split_set(sets["train"], val_fraction, seed)
            test = sets.get("test") or sets.get("val")
            if test is None:
                train, test = split_set(train, val_fraction, seed + 1)
        else:
            everything = sets.get("all") or next(iter(sets.values()))
            if len(everything) < 3:
                raise UserError(f"{root} 에 읽을 수 있는 이미지가 {len(everything)}장뿐입니다 "
                                "(3장 이상 필요).")
            rest, test = split_set(everything, val_fraction, seed + 1)
            train, val = split_set(rest, val_fraction, seed)
        if len(train) == 0 or len(test) == 0:
            raise UserError(f"{root} 에 읽을 수 있는 학습/시험 이미지가 없습니다.")
        return DetectionData(train, val, test, classes, f"{root.name} ({kind} folder, real)")
    if mode == "real":
        raise UserError(f"--data real 인데 {root} 에 검출 데이터가 없습니다. YOLO 형식(images/ + labels/ + "
                        "classes.txt 또는 data.yaml) 또는 Pascal VOC 형식(JPEGImages/ + Annotations/)의 "
                        "폴더를 --data-dir 로 주세요. 오프라인으로 돌리려면 --data offline.")
    if mode == "auto" and not smoke:
        print(f"[데이터] {root} 에 YOLO/VOC 검출 폴더가 없어 절차적 도형 데이터(오프라인)를 씁니다.")
    if smoke:
        train_size, val_size, test_size = 64, 32, 32
    make = lambda count, set_seed: make_shapes(count, set_seed, image_size, grid_size=grid_size)
    # 세 세트의 시드가 달라 같은 이미지가 겹치지 않습니다. 시험 세트는 --seed 와 상관없이 고정.
    return DetectionData(make(train_size, seed), make(val_size, seed + 1_000_003), make(test_size, TEST_SEED),
                         list(SHAPE_CLASSES), "procedural shapes (offline)")


# ---------------------------------------------------------------------------
# 사진 폴더의 학습 증강: 모자이크 → 배율·이동·뒤집기 → HSV (모두 torch.Generator 하나에서 뽑음)
# ---------------------------------------------------------------------------
MOSAIC_PROBABILITY = 0.5  # 배치의 이 비율을 모자이크로: 물체 넷이 한 장에, 잘린 물체와 낯선 배경을 봄
SCALE_RANGE = (0.5, 1.5)  # 무작위 배율: 물체가 반에서 1.5배 크기로 (YOLOv5 의 scale=0.5)
TRANSLATE = 0.1  # 무작위 이동: 한 변의 ±10% (YOLOv5 의 translate=0.1)
HSV_GAINS = (0.015, 0.7, 0.4)  # 색상(hue) ±1.5% 바퀴, 채도(saturation) ×(1±0.7), 명도(value) ×(1±0.4): YOLOv5
MIN_VISIBLE = 0.25  # 변환 뒤 원래 넓이의 이 비율보다 적게 보이는 상자는 버림 (거의 잘려 나간 물체)
MIN_BOX_PIXELS = 2.0  # 변환 뒤 너비나 높이가 이보다 작은 상자도 버림 (픽셀)
LUMA = (0.299, 0.587, 0.114)  # 밝기(Y) = 0.299R + 0.587G + 0.114B (ITU-R BT.601)


def _paste(canvas: np.ndarray, image: np.ndarray, left: int, top: int) -> None:
    """canvas (H, W, 3) 의 (left, top) 에 image (h, w, 3) 를 붙입니다. 캔버스 밖으로 나간 부분은 버림."""
    height, width = canvas.shape[:2]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + image.shape[1], width), min(top + image.shape[0], height)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = image[y1 - top: y2 - top, x1 - left: x2 - left]


def hsv_matrices(gains: torch.Tensor) -> torch.Tensor:
    """(N, 3) 의 (색상 회전 [바퀴], 채도 배율, 명도 배율) → RGB 에 곱할 (N, 3, 3) 행렬.

    HSV 로 바꿨다 되돌리는 대신 같은 효과를 선형 변환 하나로 냅니다 (배치 전체가 행렬곱 한 번):
      명도 ×v                : 모든 채널에 v 를 곱함
      채도 ×s                : 회색(밝기 Y) 쪽으로 섞기  s·RGB + (1 − s)·Y
      색상 +h 바퀴           : YIQ 공간에서 색 평면(I, Q)을 각도 2πh 만큼 회전 (밝기 Y 는 그대로)
    """
    count = len(gains)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    angle = 2 * math.pi * gains[:, 0]
    rotation = torch.zeros(count, 3, 3)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1], rotation[:, 1, 2] = angle.cos(), -angle.sin()
    rotation[:, 2, 1], rotation[:, 2, 2] = angle.sin(), angle.cos()
    hue = torch.linalg.inv(to_yiq) @ rotation @ to_yiq  # (N, 3, 3)
    grey = torch.tensor(LUMA).expand(3, 3)  # 행마다 같은 밝기 가중치: 곱하면 (Y, Y, Y)
    saturation = gains[:, 1, None, None] * torch.eye(3) + (1 - gains[:, 1, None, None]) * grey
    return gains[:, 2, None, None] * saturation @ hue


def random_photo_batch(data: DetectionSet, index: torch.Tensor, generator: torch.Generator, *,
                       mosaic: float = MOSAIC_PROBABILITY, scale: tuple[float, float] = SCALE_RANGE,
                       translate: float = TRANSLATE, flip: bool = True,
                       hsv: tuple[float, float, float] = HSV_GAINS):
    """학습 배치 하나를 증강 → (images (N, 3, S, S) float 0~1, boxes (N, M', 4) 픽셀 xyxy, labels (N, M')).

    data.images 는 레터박스한 uint8 (S×S). 이미지마다:
      1) 2S×2S 캔버스(회색)를 만들고, 확률 `mosaic` 로 네 장(자기 + 무작위 셋)을 무작위 중심 (xc, yc) 둘레의
         네 칸에 붙임(모자이크, YOLOv4). 아니면 자기 한 장을 캔버스 가운데에.
      2) 캔버스 가운데를 중심으로 배율 s ∈ scale, 이동 t ∈ ±translate·S, 좌우 뒤집기를 한 S×S 창을 잘라 냄:
             출력 q = (p − C)·s + S/2 + t,   C = (S, S) 캔버스 가운데, 뒤집으면 q_x → S − q_x
         픽셀은 cv2.warpAffine 이 역변환 자리를 쌍선형 보간으로 읽고(uint8 그대로라 빠름), 상자는 같은 식.
      3) 창 밖으로 잘린 상자는 자르고, 원래 넓이의 MIN_VISIBLE 보다 적게 남거나 MIN_BOX_PIXELS 보다
         얇아진 상자는 버림. 4) HSV 흔들기 (`hsv_matrices`).
    난수는 모두 `generator` 에서 정해진 순서로 뽑으므로 그 상태만 저장하면 이어하기가 같아집니다.
    """
    count, size = len(index), data.images.shape[-1]
    # 난수: 값과 상관없이 늘 같은 개수를 같은 순서로 뽑음
    use_mosaic = torch.rand(count, generator=generator) < mosaic
    partners = torch.randint(len(data), (count, 3), generator=generator)
    centres = size / 2 + torch.rand(count, 2, generator=generator) * size  # 모자이크 중심: [S/2, 3S/2]
    scales = scale[0] + torch.rand(count, generator=generator) * (scale[1] - scale[0])
    shifts = (torch.rand(count, 2, generator=generator) * 2 - 1) * translate * size
    flips = (torch.rand(count, generator=generator) < 0.5) & flip
    gains = torch.rand(count, 3, generator=generator) * 2 - 1  # −1~1 → 아래에서 범위로
    gains = torch.stack([gains[:, 0] * hsv[0], 1 + gains[:, 1] * hsv[1], 1 + gains[:, 2] * hsv[2]], -1)

    canvas = np.empty((2 * size, 2 * size, 3), dtype=np.uint8)  # (H, W, C): OpenCV 의 배치
    centre = float(size)  # C = 캔버스 가운데 (x, y 같음)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    kept_boxes, kept_labels = [], []
    for n in range(count):  # 배치 크기만큼의 짧은 반복
        # 1) 캔버스에 붙이기
        canvas[:] = LETTERBOX_FILL
        if use_mosaic[n]:
            xc, yc = (int(v) for v in centres[n])
            sources = [int(index[n]), *partners[n].tolist()]
            corners = [(xc - size, yc - size), (xc, yc - size), (xc - size, yc), (xc, yc)]  # ↖ ↗ ↙ ↘
        else:
            sources, corners = [int(index[n])], [(size // 2, size // 2)]
        box_parts, label_parts = [], []
        for source, (left, top) in zip(sources, corners):
            _paste(canvas, data.images[source].permute(1, 2, 0).numpy(), left, top)
            valid = data.labels[source] >= 0
            offset = torch.tensor([left, top, left, top], dtype=torch.float32)
            box_parts.append(data.boxes[source][valid] + offset)
            label_parts.append(data.labels[source][valid])
        boxes, labels = torch.cat(box_parts), torch.cat(label_parts)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # 붙이기 전의 넓이
        boxes = boxes.clamp(0, 2 * size)  # 캔버스 밖으로 나간 부분은 픽셀과 함께 잘림 (모자이크)

        # 2) 배율·이동·뒤집기: q = a·p + b (가로 a = ±s, 세로 s). 픽셀은 cv2.warpAffine 이 역변환 자리를 읽음
        s = float(scales[n])
        a = -s if flips[n] else s
        bx = size / 2 + float(shifts[n, 0]) - s * centre  # 뒤집지 않을 때의 가로 b
        bx = size - bx if flips[n] else bx  # 뒤집으면 q_x → S − q_x
        by = size / 2 + float(shifts[n, 1]) - s * centre
        # 위 식은 연속 좌표(픽셀 i 의 중심 = i + 0.5); OpenCV 는 픽셀 번호 좌표(중심 = i)라 0.5 씩 옮김
        matrix = np.array([[a, 0, bx + 0.5 * a - 0.5], [0, s, by + 0.5 * s - 0.5]], dtype=np.float64)
        images[n] = cv2.warpAffine(canvas, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(LETTERBOX_FILL,) * 3)
        x1, x2 = a * boxes[:, 0] + bx, a * boxes[:, 2] + bx  # 뒤집으면 x1 과 x2 가 자리를 바꿈
        boxes = torch.stack([torch.minimum(x1, x2), s * boxes[:, 1] + by,
                             torch.maximum(x1, x2), s * boxes[:, 3] + by], -1)

        # 3) 창 밖으로 나간 부분은 자르고, 너무 잘리거나 얇아진 상자는 버림
        area = area * s * s  # 변환 뒤에 온전히 보였다면의 넓이
        clipped = boxes.clamp(0, size)
        width, height = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        keep = (width >= MIN_BOX_PIXELS) & (height >= MIN_BOX_PIXELS) & (width * height >= MIN_VISIBLE * area)
        kept_boxes.append(clipped[keep].numpy())
        kept_labels.append(labels[keep].numpy())

    images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (N,H,W,C) → (N,C,H,W), 0~1
    images = torch.einsum("nij,njhw->nihw", hsv_matrices(gains), images).clamp(0, 1)  # 4) HSV
    boxes, labels = pad_targets(kept_boxes, kept_labels)
    return images, boxes, labels
