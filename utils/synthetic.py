"""절차적으로 만든(procedural) 데이터 세트: 정답이 정확하고, 같은 seed 면 항상 같습니다.

네트워크가 없어도 각 장이 '진짜 학습 문제'를 풀 수 있게 합니다. 학습하지 않은 모델은
이 데이터에서 우연 수준(chance level)의 점수를 냅니다. 장마다 한 구역(section)입니다.
"""

from __future__ import annotations

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
    import numpy as np  # 이 구역만 쓰므로 여기서 (rng: NumPy Generator, 아래 도우미들이 받음)

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
