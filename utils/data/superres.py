"""초해상도(super-resolution) 데이터: 표준 벤치마크(T91 → Set5, Set14), 사진 폴더, 오프라인 대체 사진.

어디서 읽든 같은 모양을 돌려줍니다 (`SRImages`): 고해상도(HR) 원본 사진을 PIL RGB 이미지 그대로.
저해상도(LR) 만들기, Y 채널, PSNR·SSIM 같은 '평가 약속(protocol)'은 12장의 주제라 장 안에 있고,
여기에는 주제가 아닌 것만 둡니다: 파일 찾기·읽기, 학습/검증/시험 나누기, 무작위 패치(patch) 뽑기.

- 표준 벤치마크: `--data-dir` 아래 `T91/`, `Set5/`, `Set14/` (또는 `--data-dir/sr/` 아래). 파일 이름은
  공개된 그대로 (`baby_GT.bmp` 등). T91 은 학습, 그중 일부(고정 분할)는 검증(best.pt 고르기),
  Set5·Set14 는 시험에만 씁니다 (시험 세트로 모델을 고르면 시험 점수가 부풀려짐).
- 사진 폴더: `--data-dir` 에 이미지 파일만 있으면, 고정 분할로 시험·검증 사진을 떼고 나머지로 학습.
- 오프라인 대체: 설치된 라이브러리에 들어 있는 실제 사진 세 장 (scikit-learn 의 china.jpg,
  flower.jpg, matplotlib 의 grace_hopper.jpg). 세 장 모두 JPEG 라 8x8 블록 압축 자국이 있는데, 그것은
  LR 에서 예측할 수 없는 잡음이라 HR 정답으로 쓰면 배울 것을 가립니다. 그래서 먼저 반으로 줄여
  (안티에일리어싱 바이큐빅: 압축 자국이 평균되어 사라짐) 깨끗한 HR 로 씁니다. 사진마다 오른쪽 1/4 띠는
  시험 (학습 때 보지 않은 영역: held-out crops), 왼쪽의 아래 1/4 은 검증, 나머지로 학습.

표준 세트는 torchvision 에 없고 안정적인 공식 내려받기 주소도 없어 내려받지 않습니다. 없으면 어디에
무엇을 두어야 하는지(SR_URL) 한 줄로 알리고, `--data auto` 면 대체 사진으로 넘어갑니다.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from utils.data.common import fallback_or_fail, wants_real_data
from utils.runtime import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BENCHMARK_FOLDERS = ("T91", "Set5", "Set14")  # 학습 1 + 시험 2 (Yang 2010, Bevilacqua 2012, Zeyde 2010)
SR_URL = "https://github.com/tegg89/SRCNN-Tensorflow (Train/, Test/Set5/, Test/Set14/)"
SPLIT_SEED = 0  # 폴더 나누기는 --seed 와 무관하게 고정: 시드 3개의 점수가 같은 시험 사진에서 나오도록
MIN_FOLDER_IMAGES = 3  # 사진 폴더: 학습·검증·시험에 적어도 한 장씩
MIN_SIDE = 16  # 이보다 작은 사진은 패치를 뽑을 수 없어 건너뜀 (알림 한 줄)
OFFLINE_NAME = "sklearn + matplotlib sample photos (offline fallback)"
SMOKE_TEST_SIDE = 48  # --smoke: 시험·검증 조각을 이 크기로 잘라 몇 초 안에 끝나게
OFFLINE_DOWNSCALE = 2  # 오프라인 JPEG 사진을 먼저 이만큼 줄여 압축 자국을 없앤 것을 HR 로 (위 설명)


@dataclass
class SRImages:
    """HR 사진들 (PIL RGB). tests: {"set5": [...], "set14": [...]} 처럼 세트 이름 → [(이름, 사진)]."""

    train: list[tuple[str, Image.Image]]
    val: list[tuple[str, Image.Image]]
    tests: dict[str, list[tuple[str, Image.Image]]]
    name: str


def read_rgb(path: Path) -> Image.Image:
    """이미지 파일 → PIL RGB. 회색조(L, P)·RGBA 는 RGB 로 바꿈 (RGBA 는 투명한 곳을 흰 바탕에 합성).

    이미지가 아니거나 잘린 파일이면 파일 이름을 대는 한 줄 UserError.
    """
    path = Path(path)
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UserError(f"{path} 를 이미지로 읽을 수 없습니다 ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:120] if str(error) else ''}).") from None
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_files(folder: Path) -> list[Path]:
    """폴더 안의 이미지 파일 (이름 순, 하위 폴더는 보지 않음)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder(folder: Path) -> list[tuple[str, Image.Image]]:
    images = []
    for path in image_files(folder):
        image = read_rgb(path)
        if min(image.size) < MIN_SIDE:
            print(f"[데이터] {path.name} ({image.width}x{image.height}) 는 너무 작아 건너뜁니다.")
            continue
        images.append((path.stem, image))
    return images


def find_benchmark_root(data_dir: Path) -> Path | None:
    """T91/, Set5/, Set14/ 를 모두 가진 폴더: data_dir 자신 또는 data_dir/sr. 없으면 None."""
    for root in (data_dir, data_dir / "sr"):
        if all((root / name).is_dir() for name in BENCHMARK_FOLDERS):
            return root
    return None


def _split(items: list, val_fraction: float, test_fraction: float = 0.0) -> tuple[list, list, list]:
    """고정 시드로 섞어 (학습, 검증, 시험). 각각 적어도 한 장 (비율이 0 이면 그 분할은 빈 목록)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(items))
    n_test = max(1, round(test_fraction * len(items))) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * len(items)))
    test = [items[i] for i in sorted(order[:n_test])]
    val = [items[i] for i in sorted(order[n_test:n_test + n_val])]
    train = [items[i] for i in sorted(order[n_test + n_val:])]
    return train, val, test


def load_benchmarks(root: Path, val_fraction: float) -> SRImages:
    """T91 (학습, 일부는 검증) → Set5, Set14 (시험)."""
    sets = {name: _read_folder(root / name) for name in BENCHMARK_FOLDERS}
    for name, images in sets.items():
        if not images:
            raise UserError(f"{root / name} 에 이미지가 없습니다 ({', '.join(IMAGE_SUFFIXES)}). {SR_URL}")
    train, val, _ = _split(sets["T91"], val_fraction)
    return SRImages(train, val, {"set5": sets["Set5"], "set14": sets["Set14"]},
                    f"T91 → Set5, Set14 (real, {root})")


def load_photo_folder(folder: Path, val_fraction: float, test_fraction: float = 0.2) -> SRImages:
    """사진 폴더 하나: 고정 분할로 시험(약 20%)·검증(val_fraction)을 떼고 나머지로 학습."""
    images = _read_folder(folder)
    if len(images) < MIN_FOLDER_IMAGES:
        raise UserError(f"--data-dir {folder} 에 쓸 수 있는 사진이 {len(images)}장뿐입니다 "
                        f"(학습·검증·시험에 적어도 {MIN_FOLDER_IMAGES}장, 한 변 {MIN_SIDE} 픽셀 이상).")
    train, val, test = _split(images, val_fraction, test_fraction)
    return SRImages(train, val, {"heldout": test}, f"photo folder {folder} (real)")


def offline_photos() -> list[tuple[str, Image.Image]]:
    """설치된 라이브러리에 든 실제 사진: sklearn china.jpg, flower.jpg (640x427), matplotlib grace_hopper.jpg
    (512x600). 어느 것도 네트워크를 쓰지 않습니다."""
    import matplotlib
    from sklearn.datasets import load_sample_images

    bundle = load_sample_images()
    photos = [(Path(name).stem, Image.fromarray(array))
              for name, array in zip(bundle.filenames, bundle.images)]
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos.append(("grace_hopper", read_rgb(hopper)))
    return photos


def load_offline(smoke: bool = False) -> SRImages:
    """사진마다 반으로 줄인 뒤: 오른쪽 1/4 띠 = 시험, 나머지 왼쪽의 아래 1/4 = 검증, 그 위 = 학습.

    검증을 사진 아래쪽에서 떼는 것은 china 의 위쪽이 하늘이라서입니다: 밋밋한 하늘에서는 바이큐빅도
    40 dB 를 넘어 모델이 나아져도 검증 PSNR 이 거의 움직이지 않습니다.
    """
    train, val, test = [], [], []
    for name, photo in offline_photos():
        width, height = photo.width // OFFLINE_DOWNSCALE, photo.height // OFFLINE_DOWNSCALE
        photo = photo.resize((width, height), Image.BICUBIC)
        cut, val_top = width * 3 // 4, height * 3 // 4
        train.append((name, photo.crop((0, 0, cut, val_top))))
        val.append((f"{name}_val", photo.crop((0, val_top, cut, height))))
        test.append((f"{name}_test", photo.crop((cut, 0, width, height))))
    if smoke:  # 몇 초 안에: 작은 조각만
        side = SMOKE_TEST_SIDE
        val = [(name, image.crop((0, 0, side, side))) for name, image in val[:1]]
        test = [(name, image.crop((0, 0, side, side))) for name, image in test[:2]]
    return SRImages(train, val, {"heldout": test}, OFFLINE_NAME)


def load_sr_data(mode: str, data_dir: Path, *, smoke: bool, val_fraction: float) -> SRImages:
    """데이터 정책(utils/data/common.py): 벤치마크 폴더 → 사진 폴더 → (auto) 오프라인 사진 / (real) 오류."""
    data_dir = Path(data_dir)
    if wants_real_data(mode, smoke):
        if data_dir.exists() and not data_dir.is_dir():
            raise UserError(f"--data-dir {data_dir} 는 폴더가 아니라 파일입니다.")
        root = find_benchmark_root(data_dir) if data_dir.is_dir() else None
        if root is not None:
            return load_benchmarks(root, val_fraction)
        if data_dir.is_dir() and image_files(data_dir):
            return load_photo_folder(data_dir, val_fraction)
        fallback_or_fail(mode, dataset="T91/Set5/Set14 (또는 사진 폴더)", where=str(data_dir), url=SR_URL,
                         reason="T91/, Set5/, Set14/ 폴더도 이미지 파일도 없음",
                         fallback="설치된 라이브러리의 사진 3장(sklearn china·flower, matplotlib hopper)")
    return load_offline(smoke)


def random_patches(hr: list[torch.Tensor], lr: list[torch.Tensor], count: int, hr_size: int, scale: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """짝이 맞는 무작위 패치: LR (count, C, hr_size/scale, hr_size/scale), HR (count, C, hr_size, hr_size).

    hr[i]: (C, H, W), lr[i]: (C, H/scale, W/scale) — 같은 사진의 HR 과 그 LR. LR 에서 (y, x) 를 고르고
    HR 에서는 (y·scale, x·scale) 를 잘라 두 패치가 정확히 같은 장면을 덮습니다. 사진은 넓이에 비례해
    고르고(큰 사진이 더 자주), 좌우·상하 뒤집기와 전치(transpose)로 8가지 방향을 섞습니다(증강).
    난수는 모두 generator 에서: 체크포인트에 그 상태가 저장되어 이어하기가 같은 패치를 뽑습니다.
    """
    lr_size = hr_size // scale
    # 패치보다 작은 사진은 고르지 않음 (넓이 0)
    areas = torch.tensor([float(t.shape[-1] * t.shape[-2]) if min(t.shape[-2:]) >= lr_size else 0.0
                          for t in lr])
    if not areas.any():
        raise UserError(f"학습 사진이 모두 패치({hr_size} 픽셀)보다 작습니다: --patch-size 를 줄이세요.")
    picks = torch.multinomial(areas, count, replacement=True, generator=generator)
    lr_batch, hr_batch = [], []
    for index in picks.tolist():
        low, high = lr[index], hr[index]
        y = int(torch.randint(low.shape[-2] - lr_size + 1, (), generator=generator))
        x = int(torch.randint(low.shape[-1] - lr_size + 1, (), generator=generator))
        low = low[:, y:y + lr_size, x:x + lr_size]
        high = high[:, y * scale:(y + lr_size) * scale, x * scale:(x + lr_size) * scale]
        flip_x, flip_y, swap = torch.rand(3, generator=generator) < 0.5
        if flip_x:
            low, high = low.flip(-1), high.flip(-1)
        if flip_y:
            low, high = low.flip(-2), high.flip(-2)
        if swap:
            low, high = low.transpose(-1, -2), high.transpose(-1, -2)
        lr_batch.append(low)
        hr_batch.append(high)
    return torch.stack(lr_batch), torch.stack(hr_batch)
