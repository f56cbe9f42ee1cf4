"""영화 리뷰 감정 데이터: IMDB(aclImdb, 내려받기 또는 풀어 둔 폴더), 오프라인 대체 절차적 리뷰.

토큰화(tokenization)와 어휘(vocabulary)는 04장의 가르칠 거리이므로 여기서 하지 않습니다.
여기서는 원문 문자열과 정답(1=긍정, 0=부정)만 돌려줍니다.

IMDB 의 표준 배치(Maas et al., 2011, https://ai.stanford.edu/~amaas/data/sentiment/)::

    <data_dir>/aclImdb/train/pos/*.txt   12,500개 (파일 하나 = 리뷰 하나, 이름은 <id>_<별점>.txt)
    <data_dir>/aclImdb/train/neg/*.txt   12,500개
    <data_dir>/aclImdb/test/pos/*.txt    12,500개
    <data_dir>/aclImdb/test/neg/*.txt    12,500개
    (train/unsup 의 정답 없는 리뷰 50,000개는 쓰지 않습니다)

감정 데이터가 흔히 오는 다른 두 모양도 `--data-dir` 로 읽습니다 (공식 분할이 없어 seed 로 나눔):

    CSV 한 파일: 글 열과 정답 열. 예: Kaggle 의 "IMDB Dataset.csv" (review, sentiment=positive/negative).
        --data-dir 에 그 파일을 직접 주거나, 그 파일(*.csv 하나)이 든 폴더를 줍니다.
    줄 파일 두 개: 한 줄 = 리뷰 하나, 긍정 *.pos / 부정 *.neg. 예: 문장 극성 데이터(sentence
        polarity v1.0, Pang & Lee 2005)의 rt-polarity.pos / rt-polarity.neg (latin-1 인코딩).
        그 두 파일이 든 폴더(또는 그 폴더를 rt-polarity/ 로 품은 폴더)를 줍니다.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError
from utils.synthetic import make_reviews

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"  # 약 84 MB
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"  # 내려받은 파일이 온전한지 확인하는 체크섬
IMDB_SPLITS = ("train", "test")
IMDB_LABELS = {"neg": 0, "pos": 1}
SYNTHETIC_TRAIN, SYNTHETIC_TEST = 10_000, 2_500  # 오프라인 리뷰 수: 2코어 CPU 에서 네 셀 학습이 몇 분
SMOKE_TRAIN, SMOKE_TEST = 64, 32  # --smoke 에서 쓰는 작은 부분집합 크기
SPLIT_TEST_FRACTION = 0.2  # 공식 분할이 없는 CSV·줄 파일: seed 로 섞어 20% 를 시험 분할로
TEXT_COLUMNS = ("review", "text", "sentence", "content")  # CSV 의 글 열로 알아보는 이름 (앞의 것 먼저)
LABEL_COLUMNS = ("sentiment", "label", "polarity")  # CSV 의 정답 열로 알아보는 이름
LABEL_VALUES = {"positive": 1, "pos": 1, "1": 1, "negative": 0, "neg": 0, "0": 0}


@dataclass
class TextSplits:
    """학습/시험 리뷰 원문과 정답(1=긍정, 0=부정), 그리고 출처 이름.

    test_kinds: 절차적 리뷰에서만, 시험 리뷰마다 "구조/위치" (예: "negation/far").
    """

    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    name: str  # 실행 기록에 남는 이름, 예: "IMDB aclImdb (real)"
    test_kinds: list[str] | None = field(default=None)


def read_imdb_folder(root: Path) -> tuple[list[str], list[int], list[str], list[int]]:
    """풀어 둔 `aclImdb/` 폴더를 읽습니다. 분할(split) 폴더가 없거나 비었으면 UserError.

    파일은 이름순으로 읽어(같은 폴더 → 같은 순서) 실행마다 결과가 같습니다.
    """
    root = Path(root)
    missing = [f"{split}/{label}" for split in IMDB_SPLITS for label in IMDB_LABELS
               if not any((root / split / label).glob("*.txt"))]
    if missing:
        raise UserError(f"{root} 에 IMDB 분할 {', '.join(missing)} 이(가) 없거나 .txt 파일이 없습니다. "
                        f"{IMDB_URL} 를 풀어 aclImdb/train|test/pos|neg/*.txt 배치를 갖추거나, "
                        "폴더를 지우고 다시 내려받으세요.")
    splits = []
    for split in IMDB_SPLITS:
        texts, labels = [], []
        for label_name, label in IMDB_LABELS.items():
            for path in sorted((root / split / label_name).glob("*.txt")):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
                labels.append(label)
        splits += [texts, labels]
    return tuple(splits)


def seeded_split(texts: list[str], labels: list[int], seed: int) -> tuple[list, list, list, list]:
    """공식 분할이 없는 데이터: 자기 난수 생성기(seed)로 섞어 앞 80% 학습, 뒤 20% 시험."""
    order = np.random.default_rng(seed).permutation(len(texts))
    n_test = max(1, round(len(texts) * SPLIT_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return ([texts[i] for i in train], [labels[i] for i in train],
            [texts[i] for i in test], [labels[i] for i in test])


def read_review_csv(path: Path) -> tuple[list[str], list[int]]:
    """글 열과 정답 열이 있는 CSV (예: Kaggle "IMDB Dataset.csv": review, sentiment).

    열 이름은 대소문자를 가리지 않고 TEXT_COLUMNS / LABEL_COLUMNS 에서 찾습니다. 정답은
    positive/negative, pos/neg, 1/0. 모르는 값이 있으면 그 값과 줄 번호를 말하는 UserError.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            rows = list(csv.reader(f))
    except (OSError, csv.Error) as error:
        raise UserError(f"CSV 파일 {path} 을 읽을 수 없습니다 ({error}).") from None
    if len(rows) < 2:
        raise UserError(f"CSV 파일 {path} 에 데이터 행이 없습니다 (머리글 + 리뷰 한 줄 이상 필요).")
    header = [name.strip().lower() for name in rows[0]]
    text_col = next((header.index(n) for n in TEXT_COLUMNS if n in header), None)
    label_col = next((header.index(n) for n in LABEL_COLUMNS if n in header), None)
    if text_col is None or label_col is None:
        raise UserError(f"CSV 파일 {path} 에 글 열({'/'.join(TEXT_COLUMNS)})과 정답 열"
                        f"({'/'.join(LABEL_COLUMNS)})이 필요합니다. 있는 열: {', '.join(rows[0])}.")
    texts, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        value = row[label_col].strip().lower() if len(row) > label_col else ""
        if value not in LABEL_VALUES or len(row) <= text_col:
            raise UserError(f"{path} 의 {line}번째 줄: 정답 '{value}' 을 알 수 없습니다 "
                            "(positive/negative, pos/neg, 1/0 중 하나).")
        texts.append(row[text_col])
        labels.append(LABEL_VALUES[value])
    return texts, labels


def read_line_files(pos_path: Path, neg_path: Path) -> tuple[list[str], list[int]]:
    """한 줄 = 리뷰 하나인 긍정/부정 파일 두 개 (예: rt-polarity.pos / .neg, latin-1). 빈 줄은 건너뜀."""
    texts, labels = [], []
    for path, label in ((neg_path, 0), (pos_path, 1)):
        raw = Path(path).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # 문장 극성 데이터는 latin-1
            text = raw.decode("latin-1")
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    return texts, labels


def find_other_layouts(data_dir: Path) -> tuple[str, Path, Path | None] | None:
    """--data-dir 에서 CSV 또는 pos/neg 줄 파일을 찾습니다: ("csv", 파일, None) / ("lines", pos, neg)."""
    if data_dir.is_file() and data_dir.suffix.lower() == ".csv":
        return "csv", data_dir, None
    for folder in (data_dir, data_dir / "rt-polarity"):
        if not folder.is_dir():
            continue
        pos, neg = sorted(folder.glob("*.pos")), sorted(folder.glob("*.neg"))
        if len(pos) == 1 and len(neg) == 1:
            return "lines", pos[0], neg[0]
    if data_dir.is_dir():  # 폴더 안의 CSV 는 글·정답 열이 있는 것만 (05장의 가격 CSV 등은 건너뜀)
        csvs = [path for path in sorted(data_dir.glob("*.csv")) if _looks_like_reviews(path)]
        if len(csvs) == 1:
            return "csv", csvs[0], None
        if len(csvs) > 1:
            names = ", ".join(p.name for p in csvs)
            raise UserError(f"{data_dir} 에 CSV 가 {len(csvs)}개 있습니다 ({names}). "
                            "--data-dir 에 쓸 파일 하나를 직접 주세요.")
    return None


def _looks_like_reviews(path: Path) -> bool:
    """CSV 머리글에 글 열과 정답 열이 있는지 (첫 줄만 읽음)."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            header = [name.strip().lower() for name in next(csv.reader(f), [])]
    except (OSError, csv.Error):
        return False
    return any(n in header for n in TEXT_COLUMNS) and any(n in header for n in LABEL_COLUMNS)


def _download_imdb(data_dir: Path) -> Path:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(IMDB_URL, download_root=str(data_dir), md5=IMDB_MD5,
                                 remove_finished=True)
    return data_dir / "aclImdb"


def load_imdb(mode: str, data_dir: str, smoke: bool, seed: int) -> TextSplits:
    """IMDB 리뷰를 데이터 정책(auto / real / offline)에 따라 불러옵니다.

    1) `<data_dir>/aclImdb/` 가 있으면 그대로 읽음 (분할이 빠졌으면 무엇이 없는지 말하는 오류)
       또는 CSV·pos/neg 줄 파일이 있으면 그것을 읽어 seed 로 학습/시험을 나눔 (모듈 설명 참고)
    2) 없으면 시간 제한을 두고 torchvision 의 도우미로 내려받아 풀기
    3) 안 되면 절차적 리뷰(utils.synthetic.make_reviews)로 대신 (`--data real` 이면 오류)
    """
    data = None
    if wants_real_data(mode, smoke):
        root = Path(data_dir) / "aclImdb"
        other = None if root.exists() else find_other_layouts(Path(data_dir))
        if other is not None:
            kind, path, neg = other
            texts, labels = read_review_csv(path) if kind == "csv" else read_line_files(path, neg)
            name = f"{path.name} (real CSV)" if kind == "csv" else f"{path.stem} pos/neg lines (real)"
            data = TextSplits(*seeded_split(texts, labels, seed), name=name)
        reason = ""
        if data is None and not root.exists():
            downloaded, reason = try_download(lambda: _download_imdb(Path(data_dir)))
            root = downloaded if downloaded is not None else root
        if data is None and root.exists():
            data = TextSplits(*read_imdb_folder(root), name="IMDB aclImdb (real)")
        elif data is None:
            fallback_or_fail(mode, dataset="IMDB (aclImdb)", where=str(root), url=IMDB_URL,
                             reason=reason, fallback="절차적 영화 리뷰 (오프라인 대체)")
    if data is None:
        train = make_reviews(SYNTHETIC_TRAIN, seed)
        test = make_reviews(SYNTHETIC_TEST, seed + 1)  # 다른 seed → 학습과 겹치지 않는 시험 리뷰
        data = TextSplits(train[0], train[1], test[0], test[1],
                          "procedural reviews (offline fallback)", test_kinds=test[2])
    if smoke:
        data = TextSplits(data.train_texts[:SMOKE_TRAIN], data.train_labels[:SMOKE_TRAIN],
                          data.test_texts[:SMOKE_TEST], data.test_labels[:SMOKE_TEST], data.name,
                          None if data.test_kinds is None else data.test_kinds[:SMOKE_TEST])
    return data
