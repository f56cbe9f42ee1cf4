"""GAN 용 이미지: MNIST·Fashion-MNIST·CIFAR-10·아무 이미지 폴더(CelebA 등), 오프라인 대체 sklearn digits.

모두 같은 모양으로 돌려줍니다: x (N, C, S, S) float32, 값 범위 [-1, 1] (생성기의 Tanh 출력과 같은 범위),
y (N,) int64. S 는 32 또는 64 (DCGAN 은 4x4 에서 두 배씩 키우므로 2의 거듭제곱).
- 28x28 흑백(MNIST 계열, sklearn digits): 사방 2픽셀 검은 여백 → 32x32, 64 이면 그다음 두 배 확대.
- 이미지 폴더: 짧은 변을 S 로 줄인 뒤 가운데를 S x S 로 자름(centre crop), RGB 3채널.
  하위 폴더가 둘 이상이면 하위 폴더 이름이 클래스(torchvision ImageFolder 와 같은 배치), 아니면 한 클래스.
학습/검증/시험은 seed 로 정한 torch.Generator 로 나눕니다 (전역 난수를 쓰지 않음).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.data.vision import MNIST_MEAN, MNIST_STD, load_mnist_like
from utils.runtime import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FOLDER_TEST_FRACTION = 0.1  # 시험 분할이 따로 없는 이미지 폴더에서 시험용으로 떼어 둘 비율
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
MNIST_SIZE = 28  # MNIST·sklearn digits(28x28 로 맞춘 것)의 한 변
SPLIT_SEED_OFFSET = 1000  # 검증 분할용 생성기: 다른 seed 사용처와 겹치지 않게 떨어뜨린 값


@dataclass
class GanImages:
    """학습/검증/시험 텐서와 그 출처. x: (N, C, S, S) float32 in [-1, 1], y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str  # 실행 기록에 남는 이름, 예: "MNIST (real)"

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]


def to_unit_range(images_0_to_1: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1]: 생성기 마지막 Tanh 의 출력 범위와 맞춥니다."""
    return images_0_to_1 * 2 - 1


def to_pixel_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1] (그림·PNG 저장용)."""
    return ((images + 1) / 2).clamp(0, 1)


def mnist_like_to_size(normalized: torch.Tensor, size: int) -> torch.Tensor:
    """MNIST 평균·표준편차로 정규화된 (N, 1, 28, 28) → [-1, 1] 범위의 (N, 1, size, size).

    28 은 2의 거듭제곱이 아니라 DCGAN 의 4→8→16→32 사다리에 맞지 않습니다. 사방 2픽셀 검은 여백을
    두르면 32x32 가 되고(글씨 모양은 그대로), 64 는 그것을 쌍선형 보간으로 두 배 키웁니다.
    """
    images = (normalized * MNIST_STD + MNIST_MEAN).clamp(0, 1)  # 정규화 되돌리기 → [0, 1]
    pad = (32 - MNIST_SIZE) // 2
    images = F.pad(images, (pad, pad, pad, pad))  # (N, 1, 32, 32), 여백 0 = 검은 배경
    if size != 32:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return to_unit_range(images.clamp(0, 1))


def read_image_square(path: Path, size: int, channels: int = 3) -> torch.Tensor | None:
    """이미지 파일 하나 → (channels, size, size) [-1, 1]. 읽을 수 없으면 None.

    짧은 변을 size 로 줄이고(가로세로 비율 유지) 가운데 size x size 를 자릅니다 (CelebA DCGAN 의 방식).
    PIL 로 픽셀만 읽으며 어떤 코드도 실행하지 않습니다.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            scale = size / min(image.size)
            width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((width, height), Image.BILINEAR)
            left, top = (width - size) // 2, (height - size) // 2
            image = image.crop((left, top, left + size, top + size))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    tensor = torch.from_numpy(pixels.copy())
    tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.unsqueeze(0)  # (H,W,C) → (C,H,W)
    return to_unit_range(tensor)


def image_files(folder: Path) -> list[Path]:
    """폴더 아래(하위 폴더 포함)의 이미지 파일, 이름순."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image_folder(root: str | Path, size: int, seed: int, max_images: int) -> tuple:
    """이미지 폴더 → (x, y, classes). 시험 분할은 호출하는 쪽에서 나눕니다.

    하위 폴더가 둘 이상이고 각각 이미지가 있으면 그 이름이 클래스, 아니면 모든 이미지가 한 클래스 "image".
    이미지가 max_images 장보다 많으면 seed 로 고른 max_images 장만 읽습니다 (CelebA 20만 장은
    64x64 float32 로 10 GB 가 넘어 메모리에 다 담을 수 없음).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"이미지 폴더 {root} 가 없습니다. --data-dir 로 이미지(.png, .jpg …)가 든 폴더를 "
                        "지정하세요 (예: CelebA 의 img_align_celeba/).")
    files = image_files(root)
    if not files:
        raise UserError(f"이미지 폴더 {root} 에 이미지 파일이 없습니다 "
                        f"(찾는 확장자: {', '.join(IMAGE_EXTENSIONS)}).")
    class_dirs = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    classes = class_dirs if len(class_dirs) >= 2 else ["image"]
    if len(files) > max_images:
        chosen = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:max_images]
        files = [files[i] for i in sorted(chosen.tolist())]
    images, labels = [], []
    for path in files:
        image = read_image_square(path, size)
        if image is None:
            continue  # 깨진 파일 하나 때문에 전체를 멈추지 않음 (아래에서 건너뛴 수를 알림)
        parts = path.relative_to(root).parts
        images.append(image)
        labels.append(classes.index(parts[0]) if len(classes) > 1 and len(parts) > 1 else 0)
    if not images:
        raise UserError(f"{root} 의 이미지 {len(files)}개를 하나도 읽을 수 없습니다 (모두 손상되었거나 "
                        "이미지가 아닙니다).")
    if len(images) < len(files):
        print(f"[데이터] {root}: 읽을 수 없는 이미지 {len(files) - len(images)}개를 건너뛰었습니다.")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes


def _cifar10(root: Path, download: bool) -> tuple:
    from torchvision.datasets import CIFAR10

    splits = []
    for train in (True, False):
        dataset = CIFAR10(root=str(root), train=train, download=download)
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).float() / 255.0  # (N,H,W,3) → (N,3,H,W)
        splits += [to_unit_range(images), torch.tensor(dataset.targets, dtype=torch.int64)]
    return tuple(splits)


def split_off(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int) -> tuple:
    """(x, y) 에서 fraction 만큼을 seed 로 무작위로 떼어 (x_rest, y_rest, x_part, y_part)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    count = max(1, round(len(x) * fraction))
    part, rest = order[:count], order[count:]
    return x[rest], y[rest], x[part], y[part]


def load_gan_images(dataset: str, mode: str, data_dir: str, smoke: bool, seed: int, size: int,
                    val_fraction: float, max_images: int = 20000) -> GanImages:
    """데이터 정책(`utils/data/common.py`)에 따라 GAN 학습용 이미지를 불러옵니다.

    dataset: "mnist" | "fashion" | "cifar10" | "folder" (folder: --data-dir 자체가 이미지 폴더).
    실제 데이터가 없으면 --data auto 는 sklearn digits 로 대신하고, --data real 은 한 줄 오류.
    학습 분할에서 val_fraction 을 떼어 검증(best.pt 고르기)에 씁니다.
    """
    x_train = None
    if dataset in ("mnist", "fashion"):
        data = load_mnist_like(dataset, mode, data_dir, smoke, seed)  # 없으면 여기서 digits 로 대체
        x_train, x_test = (mnist_like_to_size(x, size) for x in (data.x_train, data.x_test))
        y_train, y_test, classes, name = data.y_train, data.y_test, data.classes, data.name
    elif wants_real_data(mode, smoke) and dataset == "folder":
        x, y, classes = load_image_folder(data_dir, size, seed, max_images)
        x_train, y_train, x_test, y_test = split_off(x, y, FOLDER_TEST_FRACTION, seed)
        name = f"image folder {Path(data_dir).name} ({len(x)} images, real)"
    elif wants_real_data(mode, smoke):  # cifar10
        root = Path(data_dir)
        try:
            splits, reason = _cifar10(root, download=False), ""
        except RuntimeError:
            splits, reason = try_download(lambda: _cifar10(root, download=True))
        if splits is None:
            fallback_or_fail(mode, dataset="CIFAR-10", where=str(root / "cifar-10-batches-py"),
                             url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", reason=reason,
                             fallback="sklearn digits (오프라인 대체)")
        else:
            x_train, y_train, x_test, y_test = splits
            if size != 32:
                x_train, x_test = (F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                                   for x in (x_train, x_test))
            classes, name = CIFAR10_CLASSES, "CIFAR-10 (real)"
    if x_train is None:  # 오프라인 대체: 실제 손글씨 숫자 (scikit-learn 에 들어 있음)
        data = load_mnist_like("mnist", "offline", data_dir, smoke, seed)
        x_train, x_test = (mnist_like_to_size(x, size) for x in (data.x_train, data.x_test))
        y_train, y_test, classes, name = data.y_train, data.y_test, data.classes, data.name
    x_train, y_train, x_val, y_val = split_off(x_train, y_train, val_fraction, seed + SPLIT_SEED_OFFSET)
    return GanImages(x_train, y_train, x_val, y_val, x_test, y_test, list(classes), name)
