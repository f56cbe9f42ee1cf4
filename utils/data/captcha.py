"""캡차(captcha) 이미지 데이터: 파일 이름이 정답인 이미지 폴더, 또는 오프라인으로 그린 캡차.

모두 같은 모양으로 돌려줍니다: 이미지 (N, 1, H, W) uint8 회색조(0~255, 정규화 전), 라벨은 문자열 목록.
라벨 길이는 제각각이어도 됩니다 (CTC 가 정렬을 스스로 찾으므로).

데이터를 고르는 순서 (`--data auto`):
1) `--data-dir` 아래 `captcha_images_v2/` (keras-io OCR 예제의 1,040장 묶음을 푼 폴더), 또는
   `--data-dir` 자체에 이미지가 바로 들어 있으면 그 폴더. 파일 이름(확장자 뺀 것)이 정답입니다:
   `2b827.png` → "2b827".
2) 없으면 keras-io 예제가 쓰는 zip 을 시간 제한을 두고 내려받고, 안 되면 오프라인 대체 데이터:
   `captcha` 패키지의 `ImageCaptcha` 로 그린 캡차 (고정 시드, 학습·검증·시험이 서로 다른 난수열).

재현성: `captcha` 0.7 부터 `ImageCaptcha` 는 모든 난수를 `secrets`(운영체제 난수, 시드 불가)에서
뽑습니다. 그래서 `random.seed` 로는 같은 그림이 다시 나오지 않습니다. 여기서는 전역 상태를
건드리지 않고 `SeededImageCaptcha` 가 같은 그리기 단계를 밟되 모든 난수를 자기 `random.Random(seed)`
에서 뽑습니다: 같은 시드 → 같은 그림 (tests/test_ch10.py 가 확인).
"""

from __future__ import annotations

import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError

KERAS_ALPHABET = "2345678bcdefgmnpwxy"  # keras-io 'OCR model for reading captchas' 데이터의 19개 기호
KERAS_FOLDER = "captcha_images_v2"  # 그 zip 을 풀면 생기는 폴더 이름
KERAS_URL = "https://github.com/AakashKumarNain/CaptchaCracker/raw/master/captcha_images_v2.zip"
SOURCE_WIDTH, SOURCE_HEIGHT = 200, 50  # keras 데이터의 원래 크기: 오프라인 캡차도 같은 크기로 그림
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Captchas:
    """학습·검증·시험 캡차와 그 출처. images: (N, 1, H, W) uint8, labels: N 개의 문자열."""

    train_images: torch.Tensor
    train_labels: list[str]
    val_images: torch.Tensor
    val_labels: list[str]
    test_images: torch.Tensor
    test_labels: list[str]
    alphabet: str  # 학습 라벨에 나온 문자 (정렬). 모델의 클래스 = 빈칸(blank) + 이 문자들
    name: str  # 실행 기록에 남는 이름, 예: "captcha folder captcha_images_v2 (real)"


# ---------------------------------------------------------------------------
# 오프라인 캡차: 시드를 받는 ImageCaptcha
# ---------------------------------------------------------------------------
def _image_captcha_class():
    from captcha.image import ImageCaptcha  # 무거운 import 는 쓸 때만

    return ImageCaptcha


def make_captcha_generator(width: int = SOURCE_WIDTH, height: int = SOURCE_HEIGHT, seed: int = 0,
                           font_sizes: tuple[int, ...] = (36, 40, 44)):
    """`captcha.image.ImageCaptcha` 와 같은 방식으로 그리되 난수를 `random.Random(seed)` 에서 뽑는 생성기.

    ImageCaptcha 의 글꼴 불러오기(`truefonts`, 패키지에 든 DroidSansMono)와 그리기 순서는 그대로
    쓰고, 난수를 뽑는 메서드만 바꿉니다: 글자마다 글꼴·위치·회전(±30°)·사다리꼴 뒤틀림(warp)을
    고르고, 글자를 겹쳐 붙인 뒤, 점 잡음(noise dots)과 곡선 하나를 긋고 흐리게(SMOOTH) 합니다.
    font_sizes: 높이 50 픽셀에 맞춘 글자 크기 (패키지 기본값 42~56 은 높이 60 용).
    """
    from PIL import Image, ImageDraw, ImageFilter

    ImageCaptcha = _image_captcha_class()

    class SeededImageCaptcha(ImageCaptcha):
        rotate_degrees = 30.0  # 글자 회전 범위 ±30°
        warp_dx, warp_dy = (0.1, 0.3), (0.2, 0.3)  # 사다리꼴 뒤틀림 폭 (글자 너비·높이의 비율)
        space_probability = 0.5  # 글자 앞에 빈칸을 넣을 확률 (간격이 들쭉날쭉하도록)
        overlap = 0.25  # 다음 글자를 평균 너비의 최대 이 비율만큼 겹쳐 붙임
        noise_dots = 30  # 점 잡음 개수

        def __init__(self):
            super().__init__(width=width, height=height, font_sizes=font_sizes)
            self.rng = random.Random(seed)
            # 글자 마스크를 진하게: 0.7.1 의 lookup_table 과 같은 값 (int(i * 1.97))
            self.mask_table = [min(255, int(i * 1.97)) for i in range(256)]

        def color(self, low: int, high: int, opacity: int | None = None) -> tuple:
            rgb = tuple(self.rng.randint(low, high) for _ in range(3))
            return rgb if opacity is None else (*rgb, opacity)

        def draw_character(self, char: str, color: tuple) -> Image.Image:
            rng = self.rng
            font = rng.choice(self.truefonts)
            probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
            _, _, w, h = probe.multiline_textbbox((1, 1), char, font=font)
            dx, dy = rng.randint(0, 4), rng.randint(0, 6)
            im = Image.new("RGBA", (int(w) + dx, int(h) + dy))
            ImageDraw.Draw(im).text((dx, dy), char, font=font, fill=color)
            im = im.crop(im.getbbox()) if im.getbbox() else im  # 빈칸 " " 은 상자가 없음
            im = im.rotate(rng.uniform(-self.rotate_degrees, self.rotate_degrees),
                           Image.Resampling.BILINEAR, expand=True)
            # 네 모서리를 조금씩 움직이는 사다리꼴 변환(QUAD): 글자가 찌그러짐
            max_x = w * rng.uniform(*self.warp_dx)
            max_y = h * rng.uniform(*self.warp_dy)
            x1, y1, x2, y2 = (int(rng.uniform(-m, m)) for m in (max_x, max_y, max_x, max_y))
            w2, h2 = int(w) + abs(x1) + abs(x2), int(h) + abs(y1) + abs(y2)
            quad = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
            im = im.resize((w2, h2))
            return im.transform((int(w), int(h)), Image.Transform.QUAD, quad)

        def generate_image(self, chars: str, bg_color=None, fg_color=None) -> Image.Image:
            rng = self.rng
            background = bg_color or self.color(238, 255)
            color = fg_color or self.color(10, 200, rng.randint(220, 255))
            pieces = []
            for char in chars:
                if rng.random() > self.space_probability:
                    pieces.append(self.draw_character(" ", color))
                pieces.append(self.draw_character(char, color))
            text_width = sum(piece.size[0] for piece in pieces)
            canvas_width = max(text_width, self._width)
            image = Image.new("RGB", (canvas_width, self._height), background)
            average = int(text_width / max(len(chars), 1))
            offset = int(average * 0.1)
            for piece in pieces:
                w, h = piece.size
                mask = piece.convert("L").point(self.mask_table)
                image.paste(piece, (offset, int((self._height - h) / 2)), mask)
                offset += w - rng.randint(0, int(self.overlap * average))
            if canvas_width > self._width:  # 글자가 넘치면 가로로 눌러 담음
                image = image.resize((self._width, self._height))
            draw = ImageDraw.Draw(image)
            for _ in range(self.noise_dots):
                x, y = rng.randint(0, self._width), rng.randint(0, self._height)
                draw.line(((x, y), (x - 1, y - 1)), fill=color, width=3)
            fifth_w, fifth_h = self._width // 5, self._height // 5
            x1, x2 = rng.randint(0, fifth_w), rng.randint(self._width - fifth_w, self._width)
            y1 = rng.randint(fifth_h, self._height - fifth_h)
            y2 = rng.randint(y1, self._height - fifth_h)
            draw.arc([x1, y1, x2, y2], rng.randint(0, 20), rng.randint(160, 200), fill=color)
            return image.filter(ImageFilter.SMOOTH)

    return SeededImageCaptcha()


def random_texts(count: int, length: int, alphabet: str, seed: int) -> list[str]:
    """알파벳에서 고르게 뽑은 length 글자 문자열 count 개. 같은 글자가 연달아 나오는 것도 그대로 둠."""
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(count)]


def generate_captchas(count: int, length: int, alphabet: str, seed: int,
                      height: int, width: int) -> tuple[torch.Tensor, list[str]]:
    """오프라인 캡차 count 장: (count, 1, height, width) uint8 회색조와 정답 문자열.

    200x50 으로 그린 뒤 모델 입력 크기로 줄입니다 (실제 폴더를 읽을 때와 같은 처리).
    같은 seed → 같은 문자열과 같은 그림.
    """
    import cv2

    texts = random_texts(count, length, alphabet, seed)
    generator = make_captcha_generator(seed=seed + 1)  # 글자 고르기와 그리기는 다른 난수열
    images = np.empty((count, 1, height, width), dtype=np.uint8)
    for index, text in enumerate(texts):
        gray = np.asarray(generator.generate_image(text).convert("L"))  # (50, 200)
        images[index, 0] = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(images), texts


def offline_captchas(train_size: int, val_size: int, test_size: int, length: int, alphabet: str,
                     seed: int, height: int, width: int) -> Captchas:
    """오프라인 대체 데이터: 학습·검증·시험을 서로 다른 시드로 그립니다 (같은 그림이 섞이지 않도록)."""
    splits = [generate_captchas(size, length, alphabet, seed * 3 + offset, height, width)
              for offset, size in enumerate((train_size, val_size, test_size))]
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = splits
    return Captchas(train_x, train_y, val_x, val_y, test_x, test_y, "".join(sorted(set(alphabet))),
                    f"ImageCaptcha {length}-char, {len(set(alphabet))} symbols (offline)")


# ---------------------------------------------------------------------------
# 실제 폴더: 파일 이름 = 정답
# ---------------------------------------------------------------------------
def read_gray(path: str | Path, height: int, width: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """이미지 파일 → ((height, width) uint8 회색조, 원래 (높이, 너비)). 이미지로 읽을 수 없으면 None.

    OpenCV 로 픽셀만 읽습니다(어떤 코드도 실행하지 않음). imdecode(np.fromfile(...)) 는 cv2.imread 와
    달리 Windows 의 한글 경로도 읽습니다. INTER_AREA: 줄일 때 계단 무늬가 적은 보간.
    """
    import cv2

    try:
        buffer = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE) if buffer.size else None
    if image is None or image.size == 0:
        return None
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), image.shape[:2]


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def find_captcha_folder(data_dir: str | Path) -> Path | None:
    """`data_dir/captcha_images_v2/` 또는 이미지가 바로 든 `data_dir` 자체. 없으면 None."""
    root = Path(data_dir)
    for folder in (root / KERAS_FOLDER, root):
        if folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
            return folder
    return None


def load_captcha_folder(folder: str | Path, seed: int, val_fraction: float, test_fraction: float,
                        height: int, width: int) -> Captchas:
    """파일 이름이 정답인 캡차 폴더를 읽고, 고정 시드로 학습·검증·시험으로 나눕니다.

    알파벳은 학습 분할의 라벨에서 모읍니다 (모델이 배울 수 있는 문자만). 검증·시험 라벨에 학습에 없는
    문자가 있으면 그 문자를 밝히는 한 줄 오류, 이미지로 읽을 수 없는 파일도 이름을 밝히는 한 줄 오류.
    """
    folder = Path(folder)
    layout_help = "파일 이름(확장자 뺀 것)이 정답인 캡차 이미지를 두세요 (예: 2b827.png)."
    if not folder.is_dir():
        raise UserError(f"캡차 폴더 {folder} 가 없습니다. {layout_help}")
    files = image_files(folder)
    if not files:
        raise UserError(f"캡차 폴더 {folder} 에 이미지(.png, .jpg …)가 없습니다. {layout_help}")
    images = np.empty((len(files), 1, height, width), dtype=np.uint8)
    for index, path in enumerate(files):
        loaded = read_gray(path, height, width)
        if loaded is None:
            raise UserError(f"{path} 를 이미지로 읽을 수 없습니다 (손상되었거나 이미지가 아님). "
                            "고치거나 폴더에서 빼세요.")
        images[index, 0] = loaded[0]
    labels = [path.stem for path in files]
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(1, round(len(files) * test_fraction))
    n_val = max(1, round(len(files) * val_fraction))
    if len(files) < n_test + n_val + 2:
        raise UserError(f"캡차 폴더 {folder} 의 이미지가 {len(files)}장뿐이라 학습·검증·시험으로 나눌 수 "
                        "없습니다 (수백 장 이상 필요).")
    test_idx, val_idx, train_idx = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    alphabet = "".join(sorted({char for i in train_idx for char in labels[i]}))
    for i in val_idx + test_idx:
        unseen = sorted(set(labels[i]) - set(alphabet))
        if unseen:
            raise UserError(f"{files[i].name} 의 라벨에 학습 분할에 없는 문자 "
                            f"{', '.join(map(repr, unseen))} 가 있어 모델이 맞힐 수 없습니다. "
                            "그 문자가 든 이미지를 더 넣으세요.")
    pick = lambda idx: (torch.from_numpy(images[idx]), [labels[i] for i in idx])
    lengths = sorted({len(label) for label in labels})
    length_text = f"{lengths[0]}-char" if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]} chars"
    return Captchas(*pick(train_idx), *pick(val_idx), *pick(test_idx), alphabet,
                    f"captcha folder {folder.name} ({len(files)} images, {length_text}, real)")


def _download_keras_captchas(root: Path) -> Path:
    """keras-io 예제의 zip 을 받아 root 에 풉니다 (시간 제한은 호출하는 try_download 가 겁니다)."""
    import io
    import urllib.request

    with urllib.request.urlopen(KERAS_URL) as response:  # 약 9 MB: 메모리에 받은 뒤 풂
        archive = io.BytesIO(response.read())
    root.mkdir(parents=True, exist_ok=True)  # 받기에 성공했을 때만 폴더를 만듦
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(root)
    return root / KERAS_FOLDER


def load_captchas(mode: str, data_dir: str, smoke: bool, seed: int, *, val_fraction: float,
                  test_fraction: float, height: int, width: int, offline_sizes: tuple[int, int, int],
                  length: int, alphabet: str, default_data_dir: str = "data") -> Captchas:
    """데이터 정책(auto / real / offline)에 따라 캡차 폴더 또는 오프라인 캡차를 불러옵니다.

    `--data-dir` 로 직접 가리킨 폴더(기본값 data/ 가 아닌 곳)에 이미지가 없으면 내려받지 않고
    한 줄 오류: 사용자가 자기 폴더를 뜻했기 때문입니다. 기본 폴더에 없을 때만 keras 예제의 zip 을 받아 봅니다.
    """
    if wants_real_data(mode, smoke):
        root = Path(data_dir)
        folder = find_captcha_folder(root)
        pointed_here = root.resolve() != Path(default_data_dir).resolve()
        if folder is None and pointed_here and root.exists():
            what = "폴더가 아닙니다" if not root.is_dir() else "캡차 이미지(.png, .jpg …)가 없습니다"
            raise UserError(f"--data-dir {root} 에 {what}. 파일 이름이 정답인 이미지(예: 2b827.png)를 "
                            f"{root}/ 또는 {root}/{KERAS_FOLDER}/ 에 두거나 --data offline 으로 실행하세요.")
        if folder is None:
            folder, reason = try_download(lambda: _download_keras_captchas(root))
            if folder is None:
                fallback_or_fail(mode, dataset="캡차 이미지 폴더", where=f"{root}/{KERAS_FOLDER}",
                                 url=KERAS_URL, reason=reason,
                                 fallback="ImageCaptcha 로 그린 캡차 (오프라인)")
        if folder is not None:
            return load_captcha_folder(folder, seed, val_fraction, test_fraction, height, width)
    return offline_captchas(*offline_sizes, length, alphabet, seed, height, width)
