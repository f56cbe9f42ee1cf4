"""28x28 흑백 이미지 데이터: MNIST, Fashion-MNIST (torchvision), 오프라인 대체 sklearn digits.

모두 같은 모양으로 돌려줍니다: x (N, 1, 28, 28) float32, MNIST 평균·표준편차로 정규화;
y (N,) int64. 데이터가 작아서(60,000 x 784 x 4바이트 ≈ 188 MB) 통째로 텐서에 담아
DataLoader 작업자 없이 바로 장치(device)로 옮겨 씁니다.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError

MNIST_MEAN = 0.1307  # MNIST 학습 이미지 60,000장의 픽셀 평균 (0~1 범위)
MNIST_STD = 0.3081  # 같은 이미지들의 픽셀 표준편차
DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SMOKE_TRAIN, SMOKE_TEST = 128, 64  # --smoke 에서 쓰는 작은 부분집합 크기


@dataclass
class ImageSplits:
    """학습/시험 텐서와 그 출처. x: (N, 1, 28, 28) 정규화된 float32, y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str  # 실행 기록에 남는 이름, 예: "MNIST (real)"


def normalize(images_0_to_1: torch.Tensor) -> torch.Tensor:
    """[0, 1] 픽셀 → 평균 0, 표준편차 1 근처 (MNIST 통계 사용)."""
    return (images_0_to_1 - MNIST_MEAN) / MNIST_STD


def sklearn_digits_28(seed: int, test_fraction: float = 0.2) -> ImageSplits:
    """scikit-learn 에 들어 있는 실제 손글씨 숫자 1,797장(8x8, 값 0~16)을 MNIST 모양으로.

    MNIST 는 숫자를 20x20 상자에 맞춘 뒤 28x28 가운데에 둡니다. 같은 방식으로
    8x8 → 20x20 (쌍선형 보간, bilinear) → 사방 4픽셀 여백 → 28x28.
    학습/시험은 클래스 비율을 유지해(stratified) seed 로 나눕니다.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = F.pad(images, (4, 4, 4, 4)).clamp(0, 1)  # (N, 1, 28, 28)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           random_state=seed, stratify=digits.target)
    x = normalize(images)
    return ImageSplits(x[train_idx], labels[train_idx], x[test_idx], labels[test_idx],
                       DIGIT_CLASSES, "sklearn digits (offline fallback)")


def _torchvision_split(dataset_cls, root: Path, train: bool, download: bool) -> tuple:
    dataset = dataset_cls(root=str(root), train=train, download=download)
    images = dataset.data.unsqueeze(1).float() / 255.0  # (N, 28, 28) uint8 → (N, 1, 28, 28)
    return normalize(images), dataset.targets.long()


def load_mnist_like(name: str, mode: str, data_dir: str, smoke: bool, seed: int) -> ImageSplits:
    """MNIST 또는 Fashion-MNIST 를 데이터 정책에 따라 불러옵니다.

    name: "mnist" | "fashion". torchvision 이 읽는 표준 배치를 따릅니다:
    `<data_dir>/MNIST/raw/*-ubyte`, `<data_dir>/FashionMNIST/raw/*-ubyte`.
    """
    classes, title = {"mnist": (DIGIT_CLASSES, "MNIST"), "fashion": (FASHION_CLASSES, "Fashion-MNIST")}[name]
    splits = None
    if wants_real_data(mode, smoke):
        # 실제 데이터를 읽을 때만 import: torchvision.datasets 는 불러오는 데만 몇 초 (오프라인 실행은 안 씀)
        from torchvision.datasets import MNIST, FashionMNIST

        dataset_cls = {"mnist": MNIST, "fashion": FashionMNIST}[name]
        root = Path(data_dir)
        try:  # 1) 이미 내려받은 파일이 있으면 그대로 (네트워크 없음)
            train, test = (_torchvision_split(dataset_cls, root, flag, download=False)
                           for flag in (True, False))
            splits, reason = (train, test), ""
        except RuntimeError:  # 2) 없으면 시간 제한을 두고 내려받기
            splits, reason = try_download(lambda: tuple(
                _torchvision_split(dataset_cls, root, flag, download=True) for flag in (True, False)))
        except (ValueError, OSError) as error:
            raise UserError(f"{root / dataset_cls.__name__ / 'raw'} 의 {title} 파일이 손상되었습니다 "
                            f"({error}). 지우고 다시 내려받으세요.") from error
        if splits is None:
            fallback_or_fail(mode, dataset=title, where=str(root / dataset_cls.__name__ / "raw"),
                             url=dataset_cls.mirrors[0], reason=reason,
                             fallback="sklearn digits (오프라인 대체)")
    if splits is None:
        data = sklearn_digits_28(seed)
    else:
        (x_train, y_train), (x_test, y_test) = splits
        data = ImageSplits(x_train, y_train, x_test, y_test, classes, f"{title} (real)")
    if smoke:
        data = ImageSplits(data.x_train[:SMOKE_TRAIN], data.y_train[:SMOKE_TRAIN],
                           data.x_test[:SMOKE_TEST], data.y_test[:SMOKE_TEST],
                           data.classes, data.name)
    return data


def read_image_as_mnist(path: str | Path, center_of_mass: bool = True) -> torch.Tensor:
    """아무 크기·색의 이미지 파일을 MNIST 처럼 만든 (1, 1, 28, 28) 정규화 텐서로.

    MNIST 만드는 법을 그대로 따릅니다:
    1) 흑백으로 읽기. 배경이 밝으면(종이에 쓴 글씨) 반전해 '검은 배경에 흰 글씨'로.
    2) 글씨가 있는 영역만 잘라 긴 변을 20픽셀로 줄이기 (가로세로 비율 유지).
    3) 28x28 검은 판에 놓되, 질량 중심(center of mass)을 가운데(14, 14)에 맞추기.
    파일은 OpenCV 로 픽셀만 읽으며 어떤 코드도 실행하지 않습니다.
    """
    import cv2

    path = Path(path)
    if path.is_dir():
        raise UserError(f"--predict {path} 는 폴더입니다. 이미지 파일 하나(PNG, JPG 등)의 경로를 주세요.")
    if not path.is_file():
        raise UserError(f"--predict 파일 {path} 이 없습니다.")
    # imdecode(np.fromfile(...)): cv2.imread 와 달리 Windows 의 한글 경로도 읽습니다.
    buffer = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE) if buffer.size else None
    if image is None or image.size == 0:
        raise UserError(f"{path} 를 이미지로 읽을 수 없습니다 (PNG, JPG, BMP 등을 쓰세요).")
    image = image.astype(np.float32) / 255.0
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if np.median(border) > 0.5:  # 테두리가 밝으면 밝은 배경
        image, border = 1.0 - image, 1.0 - border
    background = np.median(border)  # 배경 밝기를 0, 가장 진한 획을 1로 늘림(대비 정규화)
    image = np.clip((image - background) / max(image.max() - background, 1e-6), 0, 1)
    rows, cols = np.nonzero(image > 0.2)  # 글씨 픽셀 (배경 잡음 무시)
    if len(rows) == 0:
        raise UserError(f"{path} 에서 글씨를 찾지 못했습니다 (이미지가 비어 있거나 한 색입니다).")
    image = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = 20.0 / max(image.shape)
    height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - height) // 2, (28 - width) // 2
    if center_of_mass:
        ys, xs = np.indices(image.shape)
        total = image.sum()
        top = int(round(14 - (ys * image).sum() / total))
        left = int(round(14 - (xs * image).sum() / total))
        top, left = min(max(top, 0), 28 - height), min(max(left, 0), 28 - width)
    canvas[top:top + height, left:left + width] = image
    return normalize(torch.from_numpy(canvas)).view(1, 1, 28, 28)
