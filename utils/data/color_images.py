"""32x32 컬러 이미지 데이터: CIFAR-10 (torchvision), 내 사진 폴더(image folder), 오프라인 대체 도형.

모두 같은 모양으로 돌려줍니다: x (N, 3, 32, 32) uint8 (0~255, 정규화 전), y (N,) int64.
uint8 로 두면 CIFAR-10 5만 장이 150 MB 로 작아서 통째로 텐서에 담고 DataLoader 작업자 없이
배치마다 잘라 씁니다. 평균·표준편차 정규화는 학습 세트로 계산해야 하므로 각 장에서 합니다.

데이터를 고르는 순서 (`--data auto`):
1) `--data-dir` 이 이미지 폴더이면 그것: 클래스마다 하위 폴더 하나
   (`my_images/cat/*.jpg`, `my_images/dog/*.png`), 또는 `train/` 과 `test/` 아래에 같은 구조.
   `train/`, `test/` 가 없으면 클래스 비율을 지키며 80:20 으로 나눕니다.
   이미지 폴더는 '클래스 하위 폴더에 이미지 파일이 있는 폴더'뿐입니다. 01·02 장이 내려받는
   `data/` (`MNIST/`, `FashionMNIST/`, `sklearn/`) 처럼 하위 폴더에 이미지가 없으면 이미지 폴더가
   아니라고 한 줄로 알리고 다음 단계로 넘어갑니다.
2) 아니면 `--data-dir` 의 CIFAR-10 (`cifar-10-batches-py/`), 없으면 내려받기.
3) 그것도 안 되면 오프라인 대체 데이터(절차적 도형 10종). `--data real` 이면 한 줄 오류.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError
from utils.synthetic import SHAPE_CLASSES, make_color_shapes

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FOLDER = "cifar-10-batches-py"  # torchvision 이 내려받아 푸는 폴더 이름
IMAGE_SIZE = 32  # 모든 이미지를 이 크기(정사각형)로 맞춥니다
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SHAPES_TRAIN, SHAPES_TEST = 20_000, 4_000  # 오프라인 도형 데이터 크기 (클래스마다 2,000 / 400)
SMOKE_TRAIN, SMOKE_TEST = 128, 64  # --smoke 에서 쓰는 작은 부분집합 크기
FOLDER_TEST_FRACTION = 0.2  # train/test 가 나뉘지 않은 이미지 폴더에서 시험용으로 떼어 둘 비율


@dataclass
class ColorImages:
    """학습/시험 텐서와 그 출처. x: (N, 3, 32, 32) uint8, y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str  # 실행 기록에 남는 이름, 예: "CIFAR-10 (real)"


# ---------------------------------------------------------------------------
# 이미지 파일 한 장
# ---------------------------------------------------------------------------
def read_image_rgb(path: str | Path, size: int = IMAGE_SIZE) -> torch.Tensor | None:
    """이미지 파일 → (3, size, size) uint8 RGB 텐서. 이미지가 아니면 None.

    OpenCV 로 픽셀만 읽습니다(어떤 코드도 실행하지 않음). 크기가 다르면 INTER_AREA
    (줄일 때 계단 무늬가 적은 보간)로 size x size 로 맞춥니다. 가로세로 비율이 다르면 늘어납니다.
    """
    import cv2

    # imdecode(np.fromfile(...)): cv2.imread 와 달리 Windows 의 한글 경로도 읽습니다.
    buffer = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None  # (H, W, 3) BGR 또는 None
    if image is None or image.size == 0:
        return None
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (H,W,C) → (C,H,W)


def read_predict_image(path: str | Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """`--predict` 용: 파일 하나 → (1, 3, size, size) uint8. 없거나, 폴더이거나, 이미지가 아니면 UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--predict {path} 는 파일이 아니라 폴더입니다. 이미지 파일 하나를 주세요.")
    if not path.is_file():
        raise UserError(f"--predict 파일 {path} 이 없습니다.")
    try:
        image = read_image_rgb(path, size)
    except OSError as error:  # 읽기 권한 없음 등
        raise UserError(f"--predict 파일 {path} 를 읽을 수 없습니다 ({error.strerror or error}).") from None
    if image is None:
        raise UserError(f"{path} 를 이미지로 읽을 수 없습니다 (PNG, JPG, BMP 등을 쓰세요).")
    return image.unsqueeze(0)


# ---------------------------------------------------------------------------
# 이미지 폴더 (클래스마다 하위 폴더)
# ---------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_class_images(folder: Path) -> bool:
    """`folder/<클래스>/` 중 하나라도 이미지 파일(확장자 기준)을 담고 있으면 True."""
    return folder.is_dir() and any(_image_files(sub) for sub in _class_folders(folder))


def is_image_folder(root: Path) -> bool:
    """`root` 를 이미지 폴더로 볼지: 클래스 하위 폴더(`root/<클래스>/` 또는 `root/train/<클래스>/`)에
    이미지가 있을 때만.

    하위 폴더가 있어도 그 안에 이미지가 없으면(01·02 장의 `data/MNIST/raw/*.gz` 등) 아닙니다.
    """
    root = Path(root)
    return _has_class_images(root / "train") or _has_class_images(root)


def not_image_folder_reason(root: Path) -> str:
    """이미지 폴더가 아닌 이유 한 구절 (알릴 것이 없으면 ""): 폴더는 있는데 쓸 수 없을 때만."""
    root = Path(root)
    if not root.is_dir() or (root / CIFAR10_FOLDER).is_dir() or is_image_folder(root):
        return ""
    subfolders = [folder.name for folder in _class_folders(root)]
    if not subfolders:
        return f"{root} 에 클래스 하위 폴더가 없습니다"
    shown = ", ".join(subfolders[:5]) + (", …" if len(subfolders) > 5 else "")
    return f"{root} 의 하위 폴더({shown})에 이미지 파일이 없어 이미지 폴더가 아닙니다"


def _read_class_folders(root: Path, classes: list[str] | None = None):
    """root/<클래스>/*.jpg 를 읽어 (images (N,3,32,32) uint8, labels (N,), classes, 건너뛴 파일 수)."""
    class_dirs = {folder.name: folder for folder in _class_folders(root) if _image_files(folder)}
    if classes is None:
        classes = sorted(class_dirs)
    images, labels, skipped = [], [], 0
    for label, name in enumerate(classes):
        for path in _image_files(class_dirs[name]) if name in class_dirs else []:
            image = read_image_rgb(path)
            if image is None:
                skipped += 1
                continue
            images.append(image)
            labels.append(label)
    if not images:
        return _empty_images(), torch.empty(0, dtype=torch.int64), classes, skipped
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes, skipped


def _empty_images() -> torch.Tensor:
    return torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)


def load_image_folder(root: str | Path, seed: int) -> ColorImages:
    """클래스마다 하위 폴더가 있는 이미지 폴더를 읽습니다. 크기가 다른 이미지는 32x32 로 맞춥니다.

    배치(layout) 두 가지:
        root/<클래스>/*.jpg                        → 클래스 비율을 지키며 80:20 으로 나눔 (seed 고정)
        root/train/<클래스>/*.jpg, root/test/<클래스>/*.jpg → 그대로 씀
    이미지가 없거나 클래스가 하나뿐이면 UserError.
    """
    root = Path(root)
    layout_help = (f"{root}/<클래스 이름>/*.jpg 처럼 클래스마다 하위 폴더에 이미지를 두거나 "
                   f"{root}/train/<클래스>/, {root}/test/<클래스>/ 로 나누세요.")
    if (root / "train").is_dir():
        x_train, y_train, classes, skipped = _read_class_folders(root / "train")
        if (root / "test").is_dir():
            x_test, y_test, _, skipped_test = _read_class_folders(root / "test", classes)
            skipped += skipped_test
        else:
            x_test = _empty_images()
            y_test = torch.empty(0, dtype=torch.int64)
    else:
        images, labels, classes, skipped = _read_class_folders(root)
        x_train = x_test = None
    count = len(x_train) if x_train is not None else len(images)
    if count == 0:
        extra = f" ({skipped}개 파일은 이미지로 읽지 못함)" if skipped else ""
        raise UserError(f"이미지 폴더 {root} 에서 학습할 이미지를 찾지 못했습니다{extra}. {layout_help}")
    if len(classes) < 2:
        raise UserError(f"이미지 폴더 {root} 에 클래스가 {len(classes)}개({', '.join(classes)})뿐입니다. "
                        f"분류하려면 클래스(하위 폴더)가 2개 이상 필요합니다. {layout_help}")
    if x_train is None:  # train/test 가 없으면 직접 나눔
        from sklearn.model_selection import train_test_split

        counts = torch.bincount(labels, minlength=len(classes))
        stratify = labels.numpy() if int(counts.min()) >= 2 else None  # 클래스마다 2장 이상일 때만 비율 유지
        train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=FOLDER_TEST_FRACTION,
                                               random_state=seed, stratify=stratify)
        x_train, y_train = images[train_idx], labels[train_idx]
        x_test, y_test = images[test_idx], labels[test_idx]
    if len(x_test) == 0:
        raise UserError(f"이미지 폴더 {root / 'test'} 에 시험용 이미지가 없습니다. {layout_help}")
    if skipped:
        print(f"[데이터] {root} 의 파일 {skipped}개는 이미지로 읽을 수 없어 건너뜁니다.")
    return ColorImages(x_train, y_train, x_test, y_test, classes,
                       f"image folder {root.name} ({len(classes)} classes, real)")


# ---------------------------------------------------------------------------
# CIFAR-10 과 오프라인 도형
# ---------------------------------------------------------------------------
def _cifar10_split(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(root=str(root), train=train, download=download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N,32,32,3) → (N,3,32,32)
    return images, torch.tensor(dataset.targets, dtype=torch.int64)


def color_shapes(seed: int, train_size: int = SHAPES_TRAIN, test_size: int = SHAPES_TEST) -> ColorImages:
    """오프라인 대체: 절차적 32x32 컬러 도형 10종 (utils/synthetic.py). 학습·시험은 다른 seed."""
    x_train, y_train = make_color_shapes(train_size, seed)
    x_test, y_test = make_color_shapes(test_size, seed + 1_000_003)  # 겹치지 않는 다른 난수열
    return ColorImages(x_train, y_train, x_test, y_test, list(SHAPE_CLASSES),
                       "procedural colour shapes (offline fallback)")


def load_color_images(mode: str, data_dir: str, smoke: bool, seed: int) -> ColorImages:
    """데이터 정책(auto / real / offline)에 따라 이미지 폴더, CIFAR-10, 또는 도형 데이터를 불러옵니다."""
    data = None
    if wants_real_data(mode, smoke):
        root = Path(data_dir)
        folder_reason = not_image_folder_reason(root)
        if is_image_folder(root):
            data = load_image_folder(root, seed)
        else:
            if folder_reason and mode == "auto":
                print(f"[데이터] {folder_reason} → CIFAR-10 을 찾습니다.")
            try:  # 1) 이미 내려받은 파일이 있으면 그대로 (네트워크 없음)
                splits, reason = (_cifar10_split(root, True, False), _cifar10_split(root, False, False)), ""
            except RuntimeError:  # 2) 없으면 시간 제한을 두고 내려받기
                splits, reason = try_download(lambda: (_cifar10_split(root, True, True),
                                                       _cifar10_split(root, False, True)))
            except (ValueError, OSError, EOFError) as error:
                raise UserError(f"{root / CIFAR10_FOLDER} 의 CIFAR-10 파일이 손상되었습니다 ({error}). "
                                "지우고 다시 내려받으세요.") from error
            if splits is None:
                from torchvision.datasets import CIFAR10

                fallback_or_fail(mode, dataset="CIFAR-10", where=str(root / CIFAR10_FOLDER),
                                 url=CIFAR10.url, reason="; ".join(filter(None, (folder_reason, reason))),
                                 fallback="절차적 컬러 도형 10종 (오프라인 대체)")
            else:
                (x_train, y_train), (x_test, y_test) = splits
                data = ColorImages(x_train, y_train, x_test, y_test, list(CIFAR10_CLASSES),
                                   "CIFAR-10 (real)")
    if data is None:
        data = color_shapes(seed, *((SMOKE_TRAIN, SMOKE_TEST) if smoke else (SHAPES_TRAIN, SHAPES_TEST)))
    if smoke:
        data = ColorImages(data.x_train[:SMOKE_TRAIN], data.y_train[:SMOKE_TRAIN],
                           data.x_test[:SMOKE_TEST], data.y_test[:SMOKE_TEST], data.classes, data.name)
    return data
