"""절차적으로 만든(procedural) 데이터 세트: 정답이 정확하고, 같은 seed 면 항상 같습니다.

네트워크가 없어도 각 장이 '진짜 학습 문제'를 풀 수 있게 합니다. 학습하지 않은 모델은
이 데이터에서 우연 수준(chance level)의 점수를 냅니다. 장마다 한 구역(section)입니다.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# ---- 03장: 32x32 컬러 도형 10종 (CIFAR-10 대체) ----
SHAPE_CLASSES = ["circle", "ring", "ellipse", "triangle", "square",
                 "star", "cross", "crescent", "heart", "arrow"]
SHAPE_IMAGE_SIZE = 32  # CIFAR-10 과 같은 32x32


def _shape_mask(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """도형 안쪽이면 True. (u, v) 는 도형 중심·회전·크기로 맞춘 좌표(반지름 1 ≈ 도형 크기).

    정다각형은 극좌표로: 꼭짓점 k 개, 외접원 반지름 1 이면 각 φ 방향의 변까지 거리는
    cos(π/k) / cos(φ' - π/k),  φ' = φ mod (2π/k).
    """
    r = torch.sqrt(u * u + v * v)
    phi = torch.atan2(v, u)
    name = SHAPE_CLASSES[label]
    if name == "circle":
        return r < 0.9
    if name == "ring":
        return (r < 1.0) & (r > 0.55)
    if name == "ellipse":
        return (u / 1.05) ** 2 + (v / 0.5) ** 2 < 1
    if name in ("triangle", "square"):
        k = 3 if name == "triangle" else 4
        sector = 2 * math.pi / k
        phi_in_sector = torch.remainder(phi, sector) - sector / 2
        return r * torch.cos(phi_in_sector) < math.cos(math.pi / k)
    if name == "star":  # 꼭짓점 5개: 바깥 반지름 1, 안쪽 반지름 0.42 사이를 각도에 따라 직선 보간
        sector = 2 * math.pi / 5
        t = (torch.remainder(phi, sector) / sector - 0.5).abs() * 2  # 꼭짓점에서 1, 사이에서 0
        return r < 0.42 + 0.58 * t
    if name == "cross":
        arm = 0.3
        return ((u.abs() < arm) & (v.abs() < 1)) | ((v.abs() < arm) & (u.abs() < 1))
    if name == "crescent":
        return (r < 1) & ((u - 0.45) ** 2 + v * v > 0.78 ** 2)
    if name == "heart":  # (x² + y² − 1)³ − x² y³ < 0 (하트 곡선)
        x, y = u * 1.25, -v * 1.25 + 0.25
        return (x * x + y * y - 1) ** 3 - x * x * y ** 3 < 0
    if name == "arrow":
        shaft = (v.abs() < 0.2) & (u > -1) & (u < 0.1)
        head = (u >= 0.1) & (u < 1) & (v.abs() < 0.75 * (1 - u) / 0.9)
        return shaft | head
    raise ValueError(name)


def _smooth_noise(count: int, size: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """cells x cells 난수를 쌍삼차(bicubic) 보간으로 키운 부드러운 얼룩 무늬. (N, 1, size, size), 0~1."""
    coarse = torch.rand(count, 1, cells, cells, generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    low = smooth.amin(dim=(2, 3), keepdim=True)
    high = smooth.amax(dim=(2, 3), keepdim=True)
    return (smooth - low) / (high - low + 1e-6)


def _shape_templates(resolution: int = 64, extent: float = 1.2) -> torch.Tensor:
    """도형 10종을 한 번씩만 그린 틀(template). (10, 1, R, R), 좌표 범위 [-extent, extent].

    4배 해상도로 그린 뒤 평균 풀링해 가장자리를 매끈하게(anti-aliasing) 만듭니다.
    """
    fine = resolution * 4
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine * 2 * extent - extent
    v, u = torch.meshgrid(coords, coords, indexing="ij")  # 행이 v(아래로), 열이 u(오른쪽으로)
    masks = torch.stack([_shape_mask(label, u, v).float() for label in range(len(SHAPE_CLASSES))])
    return F.avg_pool2d(masks.unsqueeze(1), 4)  # (10, 1, R, R)


def make_color_shapes(count: int, seed: int, noise_std: float = 0.06,
                      chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 컬러 도형 이미지 `count` 장. 반환: images (N, 3, 32, 32) uint8, labels (N,) int64.

    어렵게 만드는 요소(모두 이미지마다 무작위, 같은 seed 면 같은 결과):
    - 도형 10종의 위치·크기(반지름 6~13 픽셀)·회전·색
    - 배경: 두 색을 부드러운 얼룩(smooth noise) 또는 기울어진 줄무늬(stripes)로 섞은 질감
    - 도형 안쪽의 밝기 기울기(shading)와 픽셀마다의 가우스 잡음(noise_std, 0~1 밝기 단위)
    도형이 배경에 묻히지 않도록 한쪽은 어두운 색(0~0.45), 다른 쪽은 밝은 색(0.55~1)에서 뽑습니다.
    위치가 제각각이라 픽셀을 한 줄로 펴는 MLP 는 잘 못 하고, 어디서나 같은 필터를 쓰는
    합성곱 신경망(CNN)은 잘 합니다.

    빠르게 만드는 법: 도형마다 틀을 한 번만 그리고, 이미지마다 다른 회전·크기·이동은
    아핀 변환(affine_grid + grid_sample) 한 번으로 모든 이미지에 한꺼번에 적용합니다.
    """
    generator = torch.Generator().manual_seed(seed)
    size, extent = SHAPE_IMAGE_SIZE, 1.2
    templates = _shape_templates(extent=extent)
    labels = torch.arange(count) % len(SHAPE_CLASSES)  # 클래스별 개수를 고르게
    labels = labels[torch.randperm(count, generator=generator)]
    images = torch.empty(count, 3, size, size, dtype=torch.uint8)
    pixel = torch.arange(size, dtype=torch.float32) + 0.5  # 픽셀 중심 좌표
    for start in range(0, count, chunk):
        n = min(chunk, count - start)

        def uniform(low, high, *shape, n=n):
            return low + (high - low) * torch.rand(n, *shape, generator=generator)

        # 1) 도형의 자리: 반지름(픽셀), 중심(가장자리에서 반지름의 0.6배 이상 안쪽), 회전각
        radius = uniform(6.0, 13.0)  # (N,)
        margin = 0.6 * radius
        center_x = margin + (size - 2 * margin) * torch.rand(n, generator=generator)
        center_y = margin + (size - 2 * margin) * torch.rand(n, generator=generator)
        angle = uniform(0.0, 2 * math.pi)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # 출력 좌표(정규화 -1~1, 픽셀 p = 16(x+1)) → 틀 좌표 R(p - c) / (radius · extent)
        half = size / 2
        scale = 1 / (radius * extent)
        rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (N, 2, 2)
        offset = torch.stack([half - center_x, half - center_y], -1).unsqueeze(-1)  # (N, 2, 1)
        theta = torch.cat([rotation * half, rotation @ offset], -1) * scale.view(n, 1, 1)  # (N, 2, 3)
        grid = F.affine_grid(theta, [n, 1, 2 * size, 2 * size], align_corners=False)
        mask = F.grid_sample(templates[labels[start:start + n]], grid, mode="bilinear",
                             padding_mode="zeros", align_corners=False)  # (N, 1, 2H, 2W)
        mask = F.avg_pool2d(mask, 2)  # (N, 1, H, W): 2배로 뽑아 평균 → 가장자리 0~1

        # 2) 색: 배경과 도형 중 하나는 어둡고 하나는 밝게
        dark_background = torch.rand(n, 1, 1, 1, generator=generator) < 0.5
        dark, light = uniform(0.0, 0.45, 3, 1, 1), uniform(0.55, 1.0, 3, 1, 1)
        dark2, light2 = uniform(0.0, 0.45, 3, 1, 1), uniform(0.55, 1.0, 3, 1, 1)
        foreground = torch.where(dark_background, light, dark)  # (N, 3, 1, 1)
        background_a = torch.where(dark_background, dark, light)
        background_b = torch.where(dark_background, dark2, light2)

        # 3) 배경 질감: 절반은 부드러운 얼룩, 절반은 무작위 방향·간격의 줄무늬
        blobs = _smooth_noise(n, size, cells=4, generator=generator)
        stripe_angle = uniform(0.0, math.pi, 1, 1)
        period = uniform(3.0, 8.0, 1, 1)
        along = (pixel.view(1, 1, -1) * torch.cos(stripe_angle)
                 + pixel.view(1, -1, 1) * torch.sin(stripe_angle))  # (N, H, W): 줄무늬 방향 좌표
        stripes = (0.5 + 0.5 * torch.sin(2 * math.pi * along / period)).unsqueeze(1)  # (N, 1, H, W)
        use_stripes = torch.rand(n, 1, 1, 1, generator=generator) < 0.5
        texture = torch.where(use_stripes, stripes, blobs)
        background = background_a + (background_b - background_a) * texture  # (N, 3, H, W)

        # 4) 도형 안쪽 밝기 기울기(빛이 한쪽에서 오는 것처럼) + 합성 + 잡음
        shade_angle = uniform(0.0, 2 * math.pi, 1, 1)
        shade = ((pixel.view(1, 1, -1) - center_x.view(n, 1, 1)) * torch.cos(shade_angle)
                 + (pixel.view(1, -1, 1) - center_y.view(n, 1, 1)) * torch.sin(shade_angle))
        shade = shade / (2 * radius.view(n, 1, 1))  # 도형 안에서 대략 -0.5~0.5
        shaded = (foreground * (1 + 0.3 * shade.unsqueeze(1))).clamp(0, 1)  # (N, 3, H, W)
        image = background * (1 - mask) + shaded * mask
        image = image + noise_std * torch.randn(n, 3, size, size, generator=generator)
        images[start:start + n] = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


# ---- 04장: 어순이 중요한 영화 리뷰 (RNN 텍스트 분류) ----
# 리뷰마다 '의견 문장(opinion clause)' 이 정확히 하나 있고, 그 문장이 정답(긍정 1 / 부정 0)을
# 정합니다. 나머지는 감정이 없는 중립 문장(filler)입니다. 의견 문장의 세 가지 구조:
#   simple   : "the plot was good ."                     → 형용사의 극성(polarity) 그대로
#   negation : "the plot was not really good ."          → 부정어(negator)가 극성을 뒤집음
#   contrast : "the acting was bad but the plot was great ." → 'but' 뒤 절이 결론
# negation 과 contrast 는 단어 주머니(bag-of-words)로는 풀 수 없습니다: "not good"/"not bad" 는
# 같은 단어 'not' 에 극성만 다른 XOR 문제이고, contrast 는 긍정·부정 단어가 하나씩 다 들어
# 있어서 순서를 봐야 결론을 압니다. 위치(position) 두 가지:
#   near : 의견 문장이 리뷰의 마지막 문장
#   far  : 의견 문장이 첫 문장이고 그 뒤에 중립 문장이 길게 이어짐(장거리 의존, long-range)
#          → 바닐라 RNN 은 기울기 소실 때문에 여기서 약합니다.
REVIEW_POSITIVE = ["good", "great", "excellent", "wonderful", "brilliant", "superb", "enjoyable",
                   "moving", "charming", "fantastic", "clever", "gripping"]
REVIEW_NEGATIVE = ["bad", "boring", "awful", "terrible", "dull", "weak", "poor", "annoying",
                   "messy", "forgettable", "clumsy", "tedious"]
REVIEW_ASPECTS = ["plot", "acting", "story", "script", "music", "ending", "cast", "dialogue",
                  "direction", "pacing", "soundtrack", "lead actor", "camera work", "humor"]
REVIEW_NEGATORS = ["not", "never", "hardly", "not at all", "far from"]
REVIEW_INTENSIFIERS = ["", "", "very", "really", "that", "so", "quite"]
REVIEW_CONTRASTS = ["but", "but honestly", "however", "yet"]
_REVIEW_FILLER = [  # 중립 문장 틀: {slot} 은 아래 목록에서 고름
    "i watched it on {day} with my {person} .",
    "it runs about {number} minutes .",
    "the film came out in {year} .",
    "most of it was shot in {city} .",
    "my {person} picked it from the list .",
    "there is a long scene in a {place} .",
    "we saw it at the {venue} near the station .",
    "the {aspect} was done by a team from {city} .",
    "i had read about it in a magazine on {day} .",
    "the tickets cost {number} dollars each .",
    "it is based on a novel from {year} .",
    "the second half takes place in {city} .",
    "my {person} had seen it twice before .",
    "the {aspect} changes after the first hour .",
    "there were about {number} people in the room .",
]
_FILLER_SLOTS = {
    "day": ["monday", "tuesday", "friday", "saturday", "sunday"],
    "person": ["sister", "brother", "friend", "father", "mother", "cousin", "roommate"],
    "number": ["twenty", "forty", "ninety", "hundred", "twelve", "seven"],
    "year": ["1987", "1995", "2003", "2011", "2019"],
    "city": ["paris", "seoul", "boston", "madrid", "cairo", "lima"],
    "venue": ["mall", "festival", "museum", "old cinema"],
    "place": ["hotel", "train", "kitchen", "library", "cinema", "garden", "hospital"],
    "aspect": REVIEW_ASPECTS,
}
REVIEW_STRUCTURES = ("simple", "negation", "contrast")
REVIEW_POSITIONS = ("near", "far")


def _review_phrase(rng, polarity: int) -> str:
    """극성이 polarity(+1/-1)인 '측면(aspect) + 형용사' 구절, 예: 'the plot was really good'."""
    adjective = rng.choice(REVIEW_POSITIVE if polarity > 0 else REVIEW_NEGATIVE)
    aspect = rng.choice(REVIEW_ASPECTS)
    intensifier = rng.choice(REVIEW_INTENSIFIERS)
    return " ".join(w for w in ("the", aspect, "was", intensifier, adjective) if w)


def _review_opinion(rng, structure: str, label: int) -> str:
    """정답 label(1=긍정, 0=부정)이 나오도록 structure 구조의 의견 문장을 만듭니다."""
    polarity = 1 if label == 1 else -1
    if structure == "simple":
        return _review_phrase(rng, polarity) + " ."
    if structure == "negation":  # 부정어가 극성을 뒤집으므로 형용사는 반대 극성
        adjective = rng.choice(REVIEW_NEGATIVE if polarity > 0 else REVIEW_POSITIVE)
        aspect, negator = rng.choice(REVIEW_ASPECTS), rng.choice(REVIEW_NEGATORS)
        return f"the {aspect} was {negator} {adjective} ."
    # contrast: 앞 절은 반대 극성, 접속사 뒤 절이 결론
    connective = rng.choice(REVIEW_CONTRASTS)
    return f"{_review_phrase(rng, -polarity)} {connective} {_review_phrase(rng, polarity)} ."


def _review_filler(rng) -> str:
    template = str(rng.choice(_REVIEW_FILLER))
    for slot, words in _FILLER_SLOTS.items():
        while "{" + slot + "}" in template:
            template = template.replace("{" + slot + "}", str(rng.choice(words)), 1)
    return template


def make_reviews(count: int, seed: int, min_filler: int = 2, max_filler: int = 5,
                 structure_weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
                 positions: tuple[str, ...] = REVIEW_POSITIONS) -> tuple[list[str], list[int], list[str]]:
    """영화 리뷰 count 개: (리뷰 문자열들, 정답 0/1, 종류 "구조/위치") 를 돌려줍니다.

    정답과 위치는 반반, 구조는 structure_weights(simple, negation, contrast) 비율로 뽑습니다.
    simple 이 가장 흔해야 단어 주머니 모델도 '형용사의 극성'을 배울 수 있고(현실의 리뷰처럼),
    그래서 negation 에서는 오히려 거꾸로 틀리는 모습이 드러납니다. 중립 문장 수는
    min_filler~max_filler 개(한 문장 ≈ 7~9 토큰), 기본값이면 리뷰 하나가 약 20~65 토큰입니다.
    positions=("far",) 처럼 위치를 하나로 고정할 수 있습니다 (기울기 소실 실험용 긴 리뷰).
    같은 seed 면 항상 같은 리뷰입니다.
    """

    rng = np.random.default_rng(seed)
    texts, labels, kinds = [], [], []
    for _ in range(count):
        label = int(rng.integers(2))
        structure = str(rng.choice(REVIEW_STRUCTURES, p=structure_weights))
        position = positions[int(rng.integers(len(positions)))]
        sentences = [_review_filler(rng) for _ in range(int(rng.integers(min_filler, max_filler + 1)))]
        opinion = _review_opinion(rng, structure, label)
        sentences = sentences + [opinion] if position == "near" else [opinion] + sentences
        texts.append(" ".join(sentences))
        labels.append(label)
        kinds.append(f"{structure}/{position}")
    return texts, labels, kinds


# ---- 05장: 계절성이 있는 잡음 섞인 점검 계열(sanity series) ----
def noisy_seasonal_series(length: int = 1000, seed: int = 0, level: float = 10.0,
                          periods: tuple[float, ...] = (12.0, 30.0),
                          amplitudes: tuple[float, ...] = (1.0, 0.5),
                          noise: float = 0.1):
    """주기가 다른 사인파 몇 개 + 가우스 잡음: 배울 것이 분명히 있는 시계열. (length,) float64.

    x_t = level + Σ_k a_k·sin(2π·t / P_k + φ_k) + ε_t,   ε_t ~ N(0, noise²)
    위상 φ_k 와 잡음은 seed 로만 정해집니다 (같은 seed → 같은 계열).
    '내일 = 오늘'(persistence)은 사인파의 하루치 변화만큼 틀리지만, 창 안의 주기를 알아챈
    모델은 잡음 수준(noise)까지 오차를 줄일 수 있습니다. level 은 값이 모두 양수가 되게 해
    MAPE 가 정의되도록 합니다.
    """

    if len(periods) != len(amplitudes):
        raise ValueError("periods 와 amplitudes 의 길이가 같아야 합니다")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    phases = rng.uniform(0.0, 2 * np.pi, size=len(periods))
    signal = sum(a * np.sin(2 * np.pi * t / p + phi) for a, p, phi in zip(amplitudes, periods, phases))
    return level + signal + rng.normal(0.0, noise, size=length)
