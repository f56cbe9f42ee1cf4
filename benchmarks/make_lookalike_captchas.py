"""10장의 '실제 폴더' 경로를 재기 위한 닮은꼴(look-alike) 캡차 폴더를 만듭니다.

keras.io 의 'OCR model for reading captchas' 데이터(1,040장, 200×50 PNG, 다섯 글자, 19개 기호,
파일 이름 = 정답)와 같은 배치이지만, 10장의 오프라인 기본 데이터(captcha 패키지의 ImageCaptcha,
DroidSansMono 글꼴)와는 다른 글꼴(DejaVu Sans/Serif/Mono, 굵게·기울임), 다른 잡음(글자를 가로지르는
굵은 곡선 하나, 점 잡음, 약한 흐림), 다른 배경으로 그립니다. 그래서 오프라인 데이터로만 맞춘 설정이
처음 보는 모양의 실제 폴더에서도 통하는지 재는 데 씁니다 (인터넷이 없는 이 기계의 대용).

    python benchmarks/make_lookalike_captchas.py                       # outputs/lookalike_captchas/
    python benchmarks/run_all.py --only 10 --data real --data-dir outputs/lookalike_captchas

같은 --seed 면 같은 파일들이 나옵니다 (난수는 모두 numpy 의 시드 고정 생성기에서).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
KERAS_ALPHABET = "2345678bcdefgmnpwxy"  # utils/data/captcha.py 와 같은 19개 기호
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_NAMES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSans-Oblique.ttf",
              "DejaVuSerif-Italic.ttf"]
WIDTH, HEIGHT = 200, 50


def find_fonts() -> list[Path]:
    """DejaVu 글꼴 파일들 (리눅스 배포판 대부분에 있음). 없으면 한 줄로 알리고 끝냅니다."""
    fonts = [FONT_DIR / name for name in FONT_NAMES if (FONT_DIR / name).is_file()]
    if len(fonts) < 3:
        sys.exit(f"오류: {FONT_DIR} 에 DejaVu 글꼴이 없습니다 (예: apt install fonts-dejavu-core)")
    return fonts


def draw_captcha(text: str, fonts: list[Path], rng: np.random.Generator) -> Image.Image:
    """회색 배경에 글자마다 글꼴·크기·기울기·높이를 조금씩 달리 그리고, 곡선 하나와 점 잡음을 얹습니다."""
    background = int(rng.integers(215, 250))
    image = Image.new("L", (WIDTH, HEIGHT), background)
    font_path = fonts[int(rng.integers(len(fonts)))]  # 한 장에는 한 글꼴 (keras 데이터처럼)
    x = int(rng.integers(8, 24))
    for char in text:
        font = ImageFont.truetype(str(font_path), int(rng.integers(26, 34)))
        glyph = Image.new("L", (44, 50), 0)
        ImageDraw.Draw(glyph).text((6, 2), char, font=font, fill=255)
        glyph = glyph.rotate(float(rng.uniform(-18, 18)), resample=Image.BICUBIC)
        ink = int(rng.integers(20, 90))
        image.paste(Image.new("L", glyph.size, ink), (x, int(rng.integers(-4, 6))), glyph)
        x += int(rng.integers(24, 33))
    draw = ImageDraw.Draw(image)
    # 글자를 가로지르는 굵은 곡선 (사인 곡선 한 조각)
    xs = np.linspace(0, WIDTH, 60)
    phase, amplitude, centre = rng.uniform(0, 2 * np.pi), rng.uniform(4, 10), rng.uniform(18, 32)
    ys = centre + amplitude * np.sin(xs / WIDTH * rng.uniform(2, 5) + phase)
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=int(rng.integers(30, 110)),
              width=int(rng.integers(2, 4)))
    for _ in range(int(rng.integers(40, 120))):  # 점 잡음
        px, py = int(rng.integers(WIDTH)), int(rng.integers(HEIGHT))
        draw.point((px, py), fill=int(rng.integers(0, 255)))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(ROOT / "outputs" / "lookalike_captchas"))
    parser.add_argument("--count", type=int, default=1040, help="이미지 수 (keras 데이터와 같은 1,040)")
    parser.add_argument("--length", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2024)
    options = parser.parse_args()
    if options.count < 1 or options.length < 1:
        parser.error("--count 와 --length 는 1 이상이어야 합니다")
    if options.count > len(KERAS_ALPHABET) ** options.length:
        parser.error(f"--count {options.count}: 길이 {options.length} 로 만들 수 있는 "
                     "서로 다른 정답보다 많습니다")
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("*.png")):
        parser.error(f"{out_dir} 에 이미 PNG 가 있습니다: 빈 폴더를 주세요 (섞이면 정답이 흐려짐)")
    fonts = find_fonts()
    rng = np.random.default_rng(options.seed)
    texts: set[str] = set()
    while len(texts) < options.count:  # 파일 이름이 곧 정답이므로 겹치지 않게
        texts.add("".join(rng.choice(list(KERAS_ALPHABET), options.length)))
    for text in sorted(texts):
        draw_captcha(text, fonts, rng).save(out_dir / f"{text}.png")
    print(f"{out_dir}: {len(texts)}장, {WIDTH}×{HEIGHT}, 글꼴 {len(fonts)}종, 기호 {len(KERAS_ALPHABET)}개")


if __name__ == "__main__":
    main()
