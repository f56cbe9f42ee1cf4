"""번역 데이터: Multi30k 독일어→영어(실제), 절차적 영어→한국어 문장 쌍(오프라인 대체).

토큰화(tokenization)와 어휘(vocabulary)는 08장의 가르칠 거리이므로 여기서 하지 않습니다.
여기서는 원문 문장 쌍 (원문, 번역문) 의 목록만 돌려줍니다.

Multi30k task 1 (Elliott et al., 2016, https://github.com/multi30k/dataset)의 표준 배치::

    <data_dir>/train.de(.gz)  train.en(.gz)                 29,000 쌍 (한 줄 = 한 문장, 줄끼리 짝)
    <data_dir>/val.de(.gz)    val.en(.gz)                    1,014 쌍
    <data_dir>/test_2016_flickr.de(.gz)  test_2016_flickr.en(.gz)  1,000 쌍
    (<data_dir>/multi30k/ 아래에 있어도 찾습니다. 내려받으면 그곳에 .gz 로 둡니다.)

오프라인 대체 데이터(`make_english_korean`)는 어순을 바꿔야 하는 영어→한국어 문장 쌍입니다:
    "The tall student read a book in the library yesterday."
    → "키 큰 학생은 어제 도서관에서 책을 읽었다."
주어-동사-목적어(SVO) → 주어-목적어-동사(SOV), 관사 없애기, 받침에 따라 은/는·을/를 고르기,
시제(현재·과거·미래)와 부정("did not read" → "읽지 않았다"), 장소·시간 부사구의 자리 옮기기.
시험 분할은 학습에 한 번도 나오지 않은 (주어, 동사) 조합만으로 만들어, 외운 문장이 아니라
규칙을 배웠는지 잽니다.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from pathlib import Path

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}  # 우리 이름 → 파일 이름
MULTI30K_LANGUAGES = ("de", "en")  # (원문, 번역문): 독일어 → 영어
SMOKE_PAIRS = 64  # --smoke 에서 분할마다 쓰는 문장 쌍 수
OFFLINE_SIZES = {"train": 12_000, "val": 300, "test": 1_000}  # 2코어 CPU 에서 기본 실행이 몇 분
HELD_OUT_FRACTION = 0.2  # 시험에만 쓰는 (주어, 동사) 조합의 비율


@dataclass
class TranslationData:
    """문장 쌍 [(원문, 번역문), ...] 세 분할과 언어·출처 이름."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    source_language: str  # 예: "de"
    target_language: str  # 예: "en"
    name: str  # 실행 기록에 남는 이름, 예: "Multi30k de→en (real)"


# ---------------------------------------------------------------------------
# Multi30k
# ---------------------------------------------------------------------------
def read_lines(path: Path) -> list[str]:
    """한 줄 = 한 문장인 텍스트 파일(.gz 이면 풀면서)을 읽습니다. 줄 끝의 공백·줄바꿈은 지웁니다."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return [line.rstrip("\r\n").strip() for line in f]
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise UserError(f"{path} 를 읽을 수 없습니다 ({type(error).__name__}: {str(error)[:120]}). "
                        "파일을 다시 내려받으세요.") from None


def multi30k_file(folder: Path, split: str, language: str) -> Path | None:
    """`folder` 에서 `<split 파일 이름>.<언어>` 를 찾습니다: 압축 안 한 것 먼저, 다음 .gz. 없으면 None."""
    stem = f"{MULTI30K_SPLITS[split]}.{language}"
    for name in (stem, stem + ".gz"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def find_multi30k_folder(data_dir: Path) -> Path | None:
    """Multi30k 파일이 하나라도 있는 폴더: data_dir 자신 또는 data_dir/multi30k. 없으면 None."""
    for folder in (Path(data_dir), Path(data_dir) / "multi30k"):
        if any(multi30k_file(folder, s, lang) for s in MULTI30K_SPLITS for lang in MULTI30K_LANGUAGES):
            return folder
    return None


def read_multi30k(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """폴더의 여섯 파일을 읽어 분할마다 (독일어, 영어) 쌍의 목록으로.

    파일이 하나라도 없으면 그 파일 이름을, 두 언어의 줄 수가 다르면 두 파일과 줄 수를
    말하는 한 줄의 UserError. 빈 줄 쌍(양쪽 모두 빈 줄)은 건너뜁니다.
    """
    folder = Path(folder)
    missing = [f"{MULTI30K_SPLITS[s]}.{lang}(.gz)" for s in MULTI30K_SPLITS for lang in MULTI30K_LANGUAGES
               if multi30k_file(folder, s, lang) is None]
    if missing:
        raise UserError(f"{folder} 에 Multi30k 파일 {', '.join(missing)} 이(가) 없습니다. "
                        f"{MULTI30K_URL} 에서 받아 같은 폴더에 두세요.")
    splits = {}
    for split in MULTI30K_SPLITS:
        paths = [multi30k_file(folder, split, lang) for lang in MULTI30K_LANGUAGES]
        source, target = (read_lines(path) for path in paths)
        while source and target and not source[-1] and not target[-1]:  # 파일 끝의 빈 줄
            source.pop()
            target.pop()
        if len(source) != len(target):
            raise UserError(f"{paths[0].name} 은 {len(source):,}줄, {paths[1].name} 은 {len(target):,}줄로 "
                            "줄 수가 다릅니다. 두 파일은 한 줄씩 짝이어야 합니다 "
                            "(잘린 파일은 다시 받으세요).")
        splits[split] = [(s, t) for s, t in zip(source, target) if s or t]
        if not splits[split]:
            raise UserError(f"{paths[0]} 와 {paths[1]} 이(가) 비어 있습니다.")
    return splits


def _download_multi30k(folder: Path) -> Path:
    """multi30k/dataset 저장소의 raw 파일 여섯 개(.gz, 모두 약 1.3 MB)를 folder 에 내려받습니다."""
    from torchvision.datasets.utils import download_url

    for split in MULTI30K_SPLITS.values():
        for language in MULTI30K_LANGUAGES:
            name = f"{split}.{language}.gz"
            download_url(MULTI30K_URL + name, root=str(folder), filename=name)
    return folder


def load_translation_data(mode: str, data_dir: str, smoke: bool, seed: int) -> TranslationData:
    """데이터 정책(auto / real / offline)에 따라 Multi30k 또는 절차적 영어→한국어 쌍을 돌려줍니다.

    - `--data-dir` (또는 그 아래 multi30k/)에 Multi30k 파일이 있으면 읽습니다. 일부만 있으면
      빠진 파일 이름을 말하는 오류 (반쯤 내려받은 폴더를 몰래 무시하지 않음).
    - 없으면 `<data_dir>/multi30k/` 로 내려받기를 시도합니다 (시간 제한 있음).
    - 그래도 없으면: real → 어디에 두라는 오류, auto → 한 줄 알림 후 오프라인 대체 데이터.
    """
    if wants_real_data(mode, smoke):
        folder = find_multi30k_folder(Path(data_dir))
        if folder is None:
            target = Path(data_dir) / "multi30k"
            folder, reason = try_download(lambda: _download_multi30k(target))
            if folder is None:
                fallback_or_fail(mode, dataset="Multi30k", where=str(target), url=MULTI30K_URL,
                                 reason=reason, fallback="절차적 영어→한국어 문장 쌍")
        if folder is not None:
            splits = read_multi30k(folder)
            return TranslationData(splits["train"], splits["val"], splits["test"],
                                   *MULTI30K_LANGUAGES, name="Multi30k de→en (real)")
    sizes = {k: SMOKE_PAIRS for k in OFFLINE_SIZES} if smoke else OFFLINE_SIZES
    train, val, test = make_english_korean(sizes["train"], sizes["val"], sizes["test"], seed)
    return TranslationData(train, val, test, "en", "ko", name="procedural English→Korean (offline)")


# ---------------------------------------------------------------------------
# 절차적 영어 → 한국어
# ---------------------------------------------------------------------------
# 사람 주어: 영어 → 한국어 명사. 조사(은/는)는 명사의 마지막 글자 받침으로 고릅니다(has_final_consonant).
SUBJECTS = {"student": "학생", "teacher": "선생님", "child": "아이", "doctor": "의사", "man": "남자",
            "woman": "여자", "farmer": "농부", "singer": "가수", "boy": "소년", "girl": "소녀",
            "chef": "요리사", "artist": "화가"}
SUBJECT_ADJECTIVES = {"tall": "키 큰", "short": "키 작은", "young": "젊은", "old": "나이 든",
                      "happy": "행복한", "tired": "피곤한", "kind": "친절한", "busy": "바쁜"}
# 동사: 영어 (원형, 3인칭 현재, 과거) / 한국어 (현재, 과거, 미래 관형형, 부정에 쓰는 어간) / 어울리는 목적어
VERBS = {
    "read": (("read", "reads", "read"), ("읽는다", "읽었다", "읽을", "읽"),
             ("book", "newspaper", "letter", "magazine")),
    "eat": (("eat", "eats", "ate"), ("먹는다", "먹었다", "먹을", "먹"),
            ("apple", "bread", "cake", "sandwich")),
    "write": (("write", "writes", "wrote"), ("쓴다", "썼다", "쓸", "쓰"),
              ("letter", "book", "poem", "report")),
    "buy": (("buy", "buys", "bought"), ("산다", "샀다", "살", "사"),
            ("car", "book", "hat", "apple")),
    "watch": (("watch", "watches", "watched"), ("본다", "봤다", "볼", "보"),
              ("movie", "bird", "game", "car")),
    "drink": (("drink", "drinks", "drank"), ("마신다", "마셨다", "마실", "마시"),
              ("water", "milk", "coffee", "juice")),
    "open": (("open", "opens", "opened"), ("연다", "열었다", "열", "열"),
             ("door", "window", "box", "letter")),
    "clean": (("clean", "cleans", "cleaned"), ("청소한다", "청소했다", "청소할", "청소하"),
              ("room", "kitchen", "house", "car")),
}
OBJECTS = {"book": "책", "newspaper": "신문", "letter": "편지", "magazine": "잡지", "apple": "사과",
           "bread": "빵", "cake": "케이크", "sandwich": "샌드위치", "poem": "시", "report": "보고서",
           "car": "자동차", "hat": "모자", "movie": "영화", "bird": "새", "game": "경기", "water": "물",
           "milk": "우유", "coffee": "커피", "juice": "주스", "door": "문", "window": "창문", "box": "상자",
           "room": "방", "kitchen": "부엌", "house": "집"}
MASS_NOUNS = {"bread", "water", "milk", "coffee", "juice"}  # 셀 수 없는 명사: 관사 a 없이 ("drinks water")
# old: 사람이면 "나이 든"(SUBJECT_ADJECTIVES), 물건이면 "오래된" — 같은 단어도 문맥에 따라 번역이 다름
OBJECT_ADJECTIVES = {"red": "빨간", "blue": "파란", "big": "큰", "small": "작은", "new": "새",
                     "old": "오래된", "expensive": "비싼", "cheap": "싼"}
PLACES = {"in the park": "공원에서", "at school": "학교에서", "at home": "집에서",
          "in the library": "도서관에서", "in the office": "사무실에서", "at the cafe": "카페에서"}
TENSES = ("present", "past", "future")
TIMES = {"present": {"today": "오늘"}, "past": {"today": "오늘", "yesterday": "어제"},
         "future": {"today": "오늘", "tomorrow": "내일"}}  # 시간 부사는 시제와 맞는 것만


def has_final_consonant(word: str) -> bool:
    """한글 마지막 글자에 받침(종성)이 있는지: 유니코드 한글 음절 = 0xAC00 + (초성*21 + 중성)*28 + 종성."""
    code = ord(word[-1]) - 0xAC00
    return 0 <= code < 11172 and code % 28 != 0


def topic_particle(noun: str) -> str:
    """주제 조사: 받침 있으면 '은'(학생은), 없으면 '는'(아이는)."""
    return noun + ("은" if has_final_consonant(noun) else "는")


def object_particle(noun: str) -> str:
    """목적격 조사: 받침 있으면 '을'(책을), 없으면 '를'(사과를)."""
    return noun + ("을" if has_final_consonant(noun) else "를")


def english_verb_phrase(forms: tuple[str, str, str], tense: str, negated: bool) -> str:
    """("read", "reads", "read") + 시제·부정 → "reads" / "did not read" / "will not read" …"""
    base, third_person, past = forms
    if tense == "future":
        return f"will not {base}" if negated else f"will {base}"
    if negated:
        return f"{'does' if tense == 'present' else 'did'} not {base}"
    return third_person if tense == "present" else past


def korean_verb_phrase(forms: tuple[str, str, str, str], tense: str, negated: bool) -> str:
    """("읽는다", "읽었다", "읽을", "읽") + 시제·부정 → "읽는다" / "읽지 않았다" / "읽을 것이다" …"""
    present, past, future, stem = forms
    if negated:
        return f"{stem}지 " + {"present": "않는다", "past": "않았다", "future": "않을 것이다"}[tense]
    return {"present": present, "past": past, "future": f"{future} 것이다"}[tense]


def sample_pair(rng: random.Random, subject: str, verb: str) -> tuple[str, str]:
    """주어·동사가 정해진 문장 쌍 하나. 나머지(형용사, 목적어, 시제, 부정, 장소, 시간)는 rng 로."""
    english_forms, korean_forms, objects = VERBS[verb]
    obj = rng.choice(objects)
    subject_adjective = rng.choice([None, *SUBJECT_ADJECTIVES])
    object_adjective = rng.choice([None, *OBJECT_ADJECTIVES])
    tense, negated = rng.choice(TENSES), rng.random() < 0.3
    place = rng.choice([None, None, *PLACES])
    time = rng.choice([None, None, *TIMES[tense]])

    # 영어: The [형용사] 주어 동사구 [관사] [형용사] 목적어 [장소] [시간].
    object_words = [w for w in (object_adjective, obj) if w]
    if obj not in MASS_NOUNS or rng.random() < 0.5:  # 셀 수 없는 명사는 관사 없이도
        article = rng.choice(["the", "a"]) if obj not in MASS_NOUNS else "the"
        if article == "a" and object_words[0][0] in "aeiou":
            article = "an"
        object_words.insert(0, article)
    english = ["The", *[w for w in (subject_adjective, subject) if w],
               english_verb_phrase(english_forms, tense, negated), *object_words,
               *[w for w in (place, time) if w]]
    # 한국어: [형용사] 주어+은/는 [시간] [장소] [형용사] 목적어+을/를 동사구.  (SOV, 관사 없음)
    korean = [SUBJECT_ADJECTIVES.get(subject_adjective), topic_particle(SUBJECTS[subject]),
              TIMES[tense].get(time), PLACES.get(place), OBJECT_ADJECTIVES.get(object_adjective),
              object_particle(OBJECTS[obj]), korean_verb_phrase(korean_forms, tense, negated)]
    return " ".join(english) + ".", " ".join(w for w in korean if w) + "."


def held_out_combinations(seed: int) -> set[tuple[str, str]]:
    """시험에만 나오는 (주어, 동사) 조합. 모든 주어와 동사는 다른 조합으로 학습에 나옵니다."""
    rng = random.Random(seed)
    held_out = set()
    for index, subject in enumerate(SUBJECTS):  # 주어마다 동사 하나 이상을 남겨 두되 동사를 고루 돌림
        verbs = list(VERBS)
        count = max(1, round(len(verbs) * HELD_OUT_FRACTION))
        start = rng.randrange(len(verbs))
        held_out |= {(subject, verbs[(start + index + k) % len(verbs)]) for k in range(count)}
    return held_out


def make_english_korean(n_train: int, n_val: int, n_test: int, seed: int
                        ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(학습, 검증, 시험) 영어→한국어 문장 쌍. 같은 seed → 같은 문장 (자체 random.Random 만 씀).

    학습·검증은 보인(seen) (주어, 동사) 조합에서, 시험은 남겨 둔(held-out) 조합에서만 뽑습니다.
    세 분할의 문장은 서로 겹치지 않습니다(중복은 다시 뽑음).
    """
    rng = random.Random(seed)
    held_out = held_out_combinations(seed)
    seen = [(s, v) for s in SUBJECTS for v in VERBS if (s, v) not in held_out]
    unseen = sorted(held_out)
    used: set[str] = set()

    def draw(count: int, combinations: list[tuple[str, str]]) -> list[tuple[str, str]]:
        pairs = []
        while len(pairs) < count:
            pair = sample_pair(rng, *rng.choice(combinations))
            if pair[0] not in used:
                used.add(pair[0])
                pairs.append(pair)
        return pairs

    return draw(n_train, seen), draw(n_val, seen), draw(n_test, unseen)
