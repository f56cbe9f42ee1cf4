"""분할(segmentation) 데이터: 절차적 도형(오프라인 기본), 이미지+마스크 폴더, Oxford-IIIT Pet.

세 곳 모두 같은 모양을 돌려줍니다 (`SegmentationData`):
    images : (N, 3, H, W) uint8  — 메모리를 float32 의 1/4 만 쓰고, 배치마다 float 로 바꿉니다
    masks  : (N, 1, H, W) uint8  — 0 = 배경(background), 1 = 전경(foreground)

- `make_shapes(n, size, seed)`: 무늬·잡음이 있는 배경 위에 겹치는 도형 여러 개(원, 사각형, 삼각형,
  고리, 가는 선, 점)를 그리고, 그린 것과 똑같은 기하 조건으로 정확한 마스크를 만듭니다.
  이미지 i 는 (seed, i) 로만 정해지므로 같은 seed 면 언제나 같은 이미지입니다.
- `load_mask_folder(folder)`: `folder/images/` 와 `folder/masks/` 의 같은 이름(stem) 파일을
  짝짓고 **원래 해상도 그대로** 읽습니다 (`NativeData`: 크기가 제각각인 이미지의 목록). 마스크는
  0/255 또는 0/1 두 값이어야 하고 (Pytorch-UNet 사용자들이 가장 많이 겪는 '전부 검은 예측'의 원인이
  0/255 마스크를 0/1 로 착각한 것이라 둘 다 받음), 다른 값이 있으면 파일 이름을 대며 한 줄 오류.
  선택: `folder/fov/` (또는 `fov_masks/`, `mask_fov/`, `masks_fov/`)의 시야(field of view) 마스크
  (망막 사진의 둥근 안쪽 = 값 > 0, 같은 이름 또는 `<이름>_mask`, `<이름>_fov`): 지표는 시야 안의
  픽셀로만 계산합니다.
  짝이 없거나 크기가 다르면 파일 이름을 대며 한 줄 오류.
- `load_oxford_pets(root, split, size, download)`: torchvision 의 `OxfordIIITPet` 로 공식
  trainval/test 목록을 읽고, 삼분 지도(trimap: 1 = 동물, 2 = 배경, 3 = 경계)를
  동물(1, 3) 대 배경(2)의 두 클래스로 바꿉니다. 깨진 파일은 건너뛰고 몇 개인지 알려 줍니다.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from utils.runtime import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp")
LOSSY_SUFFIXES = (".jpg", ".jpeg")  # JPEG 마스크는 압축 잡음이 있어 '> 0' 대신 절반 값으로 자름
MASK_NAME_SUFFIXES = ("", "_mask")  # image 'cat.jpg' 의 마스크: 'cat.*' 또는 'cat_mask.*'
PET_FOREGROUND_TRIMAP = (1, 3)  # Oxford-IIIT Pet trimap: 1 = pet, 2 = background, 3 = border → 경계도 동물
PET_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"


@dataclass
class SegmentationData:
    """images (N, 3, H, W) uint8, masks (N, 1, H, W) uint8 ∈ {0, 1}, names: 파일 이름 (없으면 번호)."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> SegmentationData:
        index = torch.as_tensor(index)
        names = [self.names[i] for i in index.tolist()]
        return SegmentationData(self.images[index], self.masks[index], names)


@dataclass
class NativeData:
    """원래 해상도의 사진들 (크기가 제각각이라 텐서 하나로 쌓지 않고 목록으로).

    images[i] (3, H_i, W_i) uint8, masks[i] (1, H_i, W_i) uint8 ∈ {0, 1},
    fov[i] (1, H_i, W_i) bool: 지표를 잴 영역 (시야 마스크가 없으면 전부 True).
    """

    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    fov: list[torch.Tensor]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> NativeData:
        index = torch.as_tensor(index).tolist()
        return NativeData([self.images[i] for i in index], [self.masks[i] for i in index],
                          [self.fov[i] for i in index], [self.names[i] for i in index])


# ---------------------------------------------------------------------------
# 1) 절차적 도형 (오프라인 기본)
# ---------------------------------------------------------------------------
SHAPE_KINDS = ("disc", "rectangle", "triangle", "ring", "line", "dots")
SHAPE_WEIGHTS = (0.14, 0.14, 0.12, 0.2, 0.25, 0.15)  # 경계가 중요한 가는 도형(고리·선·점)을 더 자주
SHAPES_PER_IMAGE = (3, 6)  # 이미지마다 도형 수 범위 (양 끝 포함): 겹침이 흔하도록
MIN_CONTRAST = 0.25  # 도형 색과 배경 바탕색의 밝기(luminance) 차 최소값: 안 보이는 도형은 정답이 될 수 없음
NOISE_STD = 0.05  # 픽셀마다 더하는 가우스 잡음 (0~1 밝기 단위)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 밝기 가중치


def _shape_mask(kind: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """도형 하나의 정확한 마스크 (H, W) bool. 그리기와 마스크가 같은 조건이라 마스크는 정확합니다."""
    cy, cx = rng.uniform(0.1 * size, 0.9 * size, 2)
    if kind == "disc":
        radius = rng.uniform(0.06, 0.16) * size
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if kind == "rectangle":  # 돌아간 직사각형: 중심 기준 좌표를 각도만큼 돌려 |u|≤a, |v|≤b
        half_h, half_w = rng.uniform(0.04, 0.15, 2) * size
        angle = rng.uniform(0, math.pi)
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        return (np.abs(u) <= half_w) & (np.abs(v) <= half_h)
    if kind == "triangle":  # 세 변의 같은 쪽(외적 부호가 모두 같음)에 있는 점
        radius = rng.uniform(0.08, 0.18) * size
        angles = rng.uniform(0, 2 * math.pi) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        py, px = cy + radius * np.sin(angles), cx + radius * np.cos(angles)
        sides = [(px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
                 for i, j in ((0, 1), (1, 2), (2, 0))]
        return ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
            (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))
    if kind == "ring":  # 고리(annulus): 안쪽 반지름 < 거리 ≤ 바깥 반지름, 두께 1.5~3 픽셀
        radius = rng.uniform(0.07, 0.2) * size
        thickness = rng.uniform(1.5, 3.0)
        distance = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        return (distance <= radius) & (distance > radius - thickness)
    if kind == "line":  # 가는 선분: 선분까지의 거리 ≤ 두께/2, 두께 1.2~2.5 픽셀
        length = rng.uniform(0.3, 0.8) * size
        angle = rng.uniform(0, math.pi)
        dy, dx = math.sin(angle), math.cos(angle)
        t = np.clip((yy - cy) * dy + (xx - cx) * dx, -length / 2, length / 2)  # 선분 위 가장 가까운 점
        width = rng.uniform(1.2, 2.5)
        return (yy - cy - t * dy) ** 2 + (xx - cx - t * dx) ** 2 <= (width / 2) ** 2
    if kind == "dots":  # 작은 점 3~8 개 (반지름 1~2.2 픽셀) 가 한 영역에 흩어짐
        count = rng.integers(3, 9)
        spread = rng.uniform(0.08, 0.2) * size
        mask = np.zeros_like(yy, dtype=bool)
        for dot_y, dot_x, radius in zip(cy + rng.uniform(-spread, spread, count),
                                        cx + rng.uniform(-spread, spread, count),
                                        rng.uniform(1.0, 2.2, count)):
            mask |= (yy - dot_y) ** 2 + (xx - dot_x) ** 2 <= radius**2
        return mask
    raise ValueError(f"unknown shape kind {kind}")


def _textured_background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> tuple:
    """무늬 배경 (3, H, W) 과 바탕색 (3,): 줄무늬(grating) 두 개 + 흐릿한 얼룩(blotch).

    배경이 평평하면 '색이 다르면 전경'이라는 픽셀 하나짜리 규칙으로 풀려 버립니다. 무늬가 있어야
    모델이 주변 맥락(평평한 도형 대 무늬 있는 배경)을 봐야 합니다.
    """
    base = rng.uniform(0.2, 0.8, 3)
    texture = np.zeros((3, size, size))
    for _ in range(2):
        angle, period = rng.uniform(0, math.pi), rng.uniform(3.0, 12.0)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period
        texture += rng.uniform(0.04, 0.1) * rng.uniform(-1, 1, (3, 1, 1)) * np.sin(phase)[None]
    coarse = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 6, 6)))
    blotch = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].numpy()
    return base[:, None, None] + texture + 0.12 * blotch, base


def make_shapes(n: int, size: int = 64, seed: int = 0, stream: int = 0) -> SegmentationData:
    """절차적 분할 데이터 n 장: (n, 3, size, size) uint8 이미지와 정확한 (n, 1, size, size) 마스크.

    이미지 i 는 난수 생성기 (seed, stream, i) 로만 그려집니다: 앞 k 장은 n 과 상관없이 같고,
    전역 난수 상태를 건드리지 않습니다 (이어하기가 같은 숫자를 내는 조건). stream 으로 학습·검증·시험을
    서로 겹치지 않는 이미지로 나눕니다.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # 픽셀 중심 좌표
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.empty((n, 1, size, size), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng((seed, stream, i))
        image, base = _textured_background(rng, yy, xx, size)
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(rng.integers(SHAPES_PER_IMAGE[0], SHAPES_PER_IMAGE[1] + 1)):
            kind = rng.choice(SHAPE_KINDS, p=SHAPE_WEIGHTS)
            shape = _shape_mask(str(kind), rng, yy, xx, size)
            color = rng.uniform(0, 1, 3)
            while abs(LUMA @ color - LUMA @ base) < MIN_CONTRAST:
                color = rng.uniform(0, 1, 3)
            image[:, shape] = color[:, None]  # 나중 도형이 앞 도형을 덮음(겹침); 마스크는 합집합
            mask |= shape
        image = image + rng.normal(0, NOISE_STD, image.shape)
        images[i] = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        masks[i, 0] = mask
    names = [f"shapes_{seed}_{stream}_{i}" for i in range(n)]
    return SegmentationData(torch.from_numpy(images), torch.from_numpy(masks), names)


# ---------------------------------------------------------------------------
# 2) 파일 읽기: 이미지(RGB)와 마스크(> 0 = 전경)
# ---------------------------------------------------------------------------
def read_rgb(path: Path) -> Image.Image:
    """이미지를 RGB 로 읽습니다 (회색조·팔레트·RGBA·16비트도). 읽을 수 없으면 UserError."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I", "F"):  # 16비트·실수 TIFF: 0~255 로 늘림
                array = np.asarray(image, dtype=np.float64)
                span = max(array.max() - array.min(), 1e-12)
                image = Image.fromarray(np.uint8(255 * (array - array.min()) / span))
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"이미지 {path} 를 읽을 수 없습니다 ({str(error)[:120]}).") from None


BINARY_VALUE_SETS = ({0, 1}, {0, 255}, {0, 65535})  # 허용하는 마스크 값: 0/1, 0/255, 16비트 0/65535


def read_mask(path: Path, strict: bool = True) -> np.ndarray:
    """마스크 파일 → (H, W) bool. 0/1 과 0/255 마스크가 모두 맞게 읽힙니다 (값 > 0 = 전경).

    strict: 두 값(0/1, 0/255)이 아닌 마스크는 파일 이름과 값을 대며 UserError — 다중 클래스 지도나
    부드럽게 줄인(안티에일리어싱) 마스크를 '> 0' 으로 읽으면 전경이 조용히 부풀기 때문입니다.
    팔레트(GIF, 'P' 모드 PNG)는 색 번호(index)로 읽어 번호가 둘 이하인지 봅니다 (0 번 = 배경).
    JPEG 는 손실 압축이라 검은 배경에도 1~3 정도의 잡음이 생기므로 값 검사 없이 최댓값의 절반으로 자릅니다.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                image = image.convert("L")
            values = np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"마스크 {path} 를 읽을 수 없습니다 ({str(error)[:120]}).") from None
    if Path(path).suffix.lower() in LOSSY_SUFFIXES:
        return values > values.max() / 2 if values.max() > 0 else values > 0
    if strict and values.dtype != bool:
        present = set(np.unique(values).tolist())
        binary = (len(present) <= 2 if mode == "P"
                  else any(present <= allowed for allowed in BINARY_VALUE_SETS))
        if not binary:
            odd = sorted(present - {0, 1, 255})[:4]
            raise UserError(f"마스크 {path} 에 0/255(또는 0/1)가 아닌 값이 있습니다 (예: {odd}, "
                            f"값 {len(present)}가지): 전경 = 255(또는 1), 배경 = 0 인 두 값 마스크로 "
                            "저장하세요.")
    return values > 0


def _resize_pair(image: Image.Image, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """이미지는 쌍선형(bilinear), 마스크는 최근접(nearest)으로 size×size 로 (마스크에 0.5 같은 값이 없게)."""
    image_array = np.asarray(image.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)  # (3, H, W)
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return image_array, (np.asarray(mask_image) > 0)[None]  # (1, H, W)


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]], names: list[str]) -> SegmentationData:
    images = torch.from_numpy(np.stack([image for image, _ in pairs]))
    masks = torch.from_numpy(np.stack([mask for _, mask in pairs]).astype(np.uint8))
    return SegmentationData(images, masks, names)


# ---------------------------------------------------------------------------
# 3) 내 폴더: images/ + masks/
# ---------------------------------------------------------------------------
def has_mask_folder(folder: Path) -> bool:
    return (Path(folder) / "images").is_dir() and (Path(folder) / "masks").is_dir()


def pair_files(folder: Path) -> list[tuple[Path, Path]]:
    """images/ 와 masks/ 의 파일을 이름(stem)으로 짝짓습니다. 짝이 어긋나면 첫 파일 이름을 대며 UserError."""
    folder = Path(folder)
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    masks = sorted(p for p in (folder / "masks").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    kinds = ", ".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{folder / 'images'} 에 이미지 파일({kinds})이 없습니다.")
    if not masks:
        raise UserError(f"{folder / 'masks'} 에 마스크 파일({kinds})이 없습니다.")
    mask_by_stem = {p.stem: p for p in masks}
    pairs, lonely = [], []
    for image in images:
        candidates = [image.stem + suffix for suffix in MASK_NAME_SUFFIXES]
        match = next((mask_by_stem[stem] for stem in candidates if stem in mask_by_stem), None)
        (pairs.append((image, match)) if match is not None else lonely.append(image))
    if lonely:
        raise UserError(f"이미지 {lonely[0]} 에 짝이 되는 마스크가 {folder / 'masks'} 에 없습니다 "
                        f"({lonely[0].stem}.png 또는 {lonely[0].stem}_mask.png 처럼 같은 이름이어야 함; "
                        f"짝 없는 이미지 {len(lonely)}개).")
    used = {mask for _, mask in pairs}
    orphans = [m for m in masks if m not in used]
    if orphans:
        raise UserError(f"마스크 {orphans[0]} 에 짝이 되는 이미지가 {folder / 'images'} 에 없습니다 "
                        f"(짝 없는 마스크 {len(orphans)}개).")
    return pairs


# 선택: 시야(field of view) 마스크 폴더. 앞의 이름부터 찾음 (DRIVE 의 'mask/' 는 'masks/' 와 헷갈려 받지 않음)
FOV_FOLDERS = ("fov", "fov_masks", "mask_fov", "masks_fov")


def fov_folder(folder: Path) -> Path | None:
    """folder 안의 시야 마스크 폴더 (FOV_FOLDERS 중 처음 있는 것), 없으면 None."""
    return next((Path(folder) / name for name in FOV_FOLDERS if (Path(folder) / name).is_dir()), None)

FOV_NAME_SUFFIXES = ("", "_mask", "_fov")  # image 'x.jpg' 의 시야 마스크: 'x.*', 'x_mask.*', 'x_fov.*'


def _fov_for(folder: Path, image_path: Path, shape: tuple[int, int]) -> torch.Tensor:
    """시야 마스크 (1, H, W) bool. fov/ 폴더가 없으면 전부 True; 짝이 없거나 크기가 다르면 UserError."""
    fov_dir = fov_folder(folder)
    if fov_dir is None:
        return torch.ones(1, *shape, dtype=torch.bool)
    files = sorted(p for p in fov_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    candidates = [p for suffix in FOV_NAME_SUFFIXES for p in files if p.stem == image_path.stem + suffix]
    if not candidates:
        raise UserError(f"이미지 {image_path} 의 시야 마스크가 {fov_dir} 에 없습니다 ({image_path.stem}.png "
                        f"처럼 같은 이름; 시야 마스크를 쓰지 않으려면 {fov_dir} 폴더를 치우세요).")
    fov = read_mask(candidates[0], strict=False)
    if fov.shape != shape:
        raise UserError(f"시야 마스크 {candidates[0]} 의 크기 {fov.shape[1]}x{fov.shape[0]} 가 이미지 "
                        f"{image_path} 의 크기 {shape[1]}x{shape[0]} 와 다릅니다.")
    return torch.from_numpy(fov)[None]


def load_mask_folder(folder: Path) -> NativeData:
    """`folder/images/*` 와 `folder/masks/*` 를 짝지어 원래 크기 그대로 읽습니다 (+ 선택 `folder/fov/*`).

    학습 전에 모든 파일을 확인합니다: 마스크가 이미지와 크기가 다르면(다른 파일을 짝지었거나 잘린 것),
    두 값(0/255, 0/1)이 아닌 마스크, 짝 없는 이미지 — 모두 파일 이름을 대며 UserError.
    """
    folder = Path(folder)
    images, masks, fovs, names = [], [], [], []
    for image_path, mask_path in pair_files(folder):
        image, mask = read_rgb(image_path), read_mask(mask_path)
        if mask.shape != (image.height, image.width):
            raise UserError(f"마스크 {mask_path} 의 크기 {mask.shape[1]}x{mask.shape[0]} 가 이미지 "
                            f"{image_path} 의 크기 {image.width}x{image.height} 와 다릅니다.")
        images.append(torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()))  # (3, H, W) uint8
        masks.append(torch.from_numpy(mask.astype(np.uint8))[None])  # (1, H, W) ∈ {0, 1}
        fovs.append(_fov_for(folder, image_path, mask.shape))
        names.append(image_path.name)
    return NativeData(images, masks, fovs, names)


# ---------------------------------------------------------------------------
# 4) Oxford-IIIT Pet (torchvision)
# ---------------------------------------------------------------------------
def load_oxford_pets(root: Path, split: str, size: int,
                     download: bool = False) -> tuple[SegmentationData, int]:
    """torchvision `OxfordIIITPet(split, target_types="segmentation")` → (데이터, 건너뛴 파일 수).

    split: "trainval" 또는 "test" (데이터 세트의 공식 목록). 몇몇 파일은 깨졌거나 확장자와 다른
    형식이라 PIL 이 읽지 못합니다: 그런 쌍은 건너뛰고 개수를 돌려줍니다.
    파일이 없고 download=False 면 torchvision 의 RuntimeError 가 그대로 올라갑니다.
    """
    from torchvision.datasets import OxfordIIITPet

    dataset = OxfordIIITPet(root=str(root), split=split, target_types="segmentation", download=download)
    pairs, names, skipped = [], [], 0
    for index in range(len(dataset)):
        try:
            image, trimap = dataset[index]  # PIL RGB 이미지, PIL 'L' 삼분 지도 (값 1, 2, 3)
            image.load()
            mask = np.isin(np.asarray(trimap), PET_FOREGROUND_TRIMAP)  # 동물 + 경계 = 전경
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            skipped += 1
            continue
        if mask.shape != (image.height, image.width):
            skipped += 1
            continue
        pairs.append(_resize_pair(image, mask, size))
        names.append(f"pet_{split}_{index}")
    if not pairs:
        raise UserError(f"{root} 의 Oxford-IIIT Pet {split} 파일을 하나도 읽지 못했습니다 ({PET_URL}).")
    return _stack(pairs, names), skipped


# ---------------------------------------------------------------------------
# 5) 데이터 정책: 내 폴더 → Oxford-IIIT Pet → 절차적 도형
# ---------------------------------------------------------------------------
SMOKE_SIZES = (16, 8, 8)  # --smoke: 학습·검증·시험 이미지 수 (배치 하나씩만 쓰므로 작게)
FOLDER_TEST_FRACTION = 0.15  # 내 폴더: 시험용으로 떼는 비율 (나머지에서 다시 검증을 뗌)
OFFLINE_NAME = "procedural shapes (offline)"


def _split(data, fraction: float, seed: int) -> tuple:
    """seed 로 고정한 순서로 섞어 (나머지, 떼어 낸 fraction) 로 나눕니다. 전역 난수는 쓰지 않음."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    cut = max(1, round(len(data) * fraction))
    return data.subset(order[cut:]), data.subset(order[:cut])


def load_segmentation_data(mode: str, data_dir: Path, *, smoke: bool, size: int, seed: int,
                           sizes: tuple[int, int, int], val_fraction: float) -> tuple:
    """(train, val, test, 데이터 이름). 찾는 순서: `data_dir/images`+`masks` → Oxford-IIIT Pet → 도형.

    내 폴더는 원래 해상도의 `NativeData` (이미지 단위로 시드 고정 분할: 시험 15%, 나머지에서 검증),
    Pet 과 도형은 size×size 로 맞춘 `SegmentationData` 입니다.

    --data real 인데 둘 다 없으면 어디에 무엇을 두어야 하는지 말하는 UserError.
    """
    from utils.data.common import fallback_or_fail, try_download, wants_real_data

    data_dir = Path(data_dir)
    if wants_real_data(mode, smoke):
        if (data_dir / "images").is_dir() or (data_dir / "masks").is_dir():
            if not has_mask_folder(data_dir):
                missing = "masks" if (data_dir / "images").is_dir() else "images"
                raise UserError(f"{data_dir} 에 {missing}/ 폴더가 없습니다: 내 데이터는 "
                                f"{data_dir}/images/ 와 {data_dir}/masks/ 에 같은 이름으로 두세요.")
            data = load_mask_folder(data_dir)  # 원래 해상도 (크기를 바꾸지 않음)
            if len(data) < 3:
                raise UserError(f"{data_dir} 의 이미지-마스크 쌍이 {len(data)}개뿐입니다: 학습·검증·시험에 "
                                "최소 3쌍이 필요합니다.")
            rest, test = _split(data, FOLDER_TEST_FRACTION, seed)
            train, val = _split(rest, val_fraction, seed + 1)
            fov = f" + {fov_folder(data_dir).name}/" if fov_folder(data_dir) else ""
            return train, val, test, f"mask folder {data_dir}{fov} (real, native resolution)"
        pets = _load_pets(data_dir, size, try_download)
        if isinstance(pets, tuple):
            (trainval, skipped_trainval), (test, skipped_test) = pets
            if skipped_trainval or skipped_test:
                skipped = skipped_trainval + skipped_test
                print(f"[데이터] Oxford-IIIT Pet: 읽을 수 없는 파일 {skipped}개 건너뜀 "
                      f"(trainval {skipped_trainval}, test {skipped_test})")
            train, val = _split(trainval, val_fraction, seed)
            return train, val, test, "Oxford-IIIT Pet (real, trimap pet+border vs background)"
        fallback_or_fail(mode, dataset="Oxford-IIIT Pet 또는 images/+masks/ 폴더", where=str(data_dir),
                         url=PET_URL, reason=pets, fallback=OFFLINE_NAME)
    train_size, val_size, test_size = SMOKE_SIZES if smoke else sizes
    return (make_shapes(train_size, size, seed, stream=0), make_shapes(val_size, size, seed, stream=1),
            make_shapes(test_size, size, seed, stream=2), OFFLINE_NAME)


def _load_pets(data_dir: Path, size: int, try_download):
    """Pet 의 (trainval, test) 또는 실패 이유 한 줄. 이미 있으면 읽고, 없으면 내려받기를 시도."""
    try:
        return load_oxford_pets(data_dir, "trainval", size), load_oxford_pets(data_dir, "test", size)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        pass
    _, reason = try_download(lambda: load_oxford_pets(data_dir, "test", 8, download=True))
    if reason:
        return reason
    return load_oxford_pets(data_dir, "trainval", size), load_oxford_pets(data_dir, "test", size)
