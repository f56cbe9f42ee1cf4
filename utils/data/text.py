"""영화 리뷰 감정 데이터: IMDB(aclImdb, 내려받기 또는 풀어 둔 폴더), 오프라인 대체 절차적 리뷰.

토큰화(tokenization)와 어휘(vocabulary)는 04장의 가르칠 거리이므로 여기서 하지 않습니다.
여기서는 원문 문자열과 정답(1=긍정, 0=부정)만 돌려줍니다.

IMDB 의 표준 배치(Maas et al., 2011, https://ai.stanford.edu/~amaas/data/sentiment/)::

    <data_dir>/aclImdb/train/pos/*.txt   12,500개 (파일 하나 = 리뷰 하나, 이름은 <id>_<별점>.txt)
    <data_dir>/aclImdb/train/neg/*.txt   12,500개
    <data_dir>/aclImdb/test/pos/*.txt    12,500개
    <data_dir>/aclImdb/test/neg/*.txt    12,500개
    (train/unsup 의 정답 없는 리뷰 50,000개는 쓰지 않습니다)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from utils.data.common import fallback_or_fail, try_download, wants_real_data
from utils.runtime import UserError
from utils.synthetic import make_reviews

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"  # 약 84 MB
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"  # 내려받은 파일이 온전한지 확인하는 체크섬
IMDB_SPLITS = ("train", "test")
IMDB_LABELS = {"neg": 0, "pos": 1}
SYNTHETIC_TRAIN, SYNTHETIC_TEST = 10_000, 2_500  # 오프라인 리뷰 수: 2코어 CPU 에서 네 셀 학습이 몇 분
SMOKE_TRAIN, SMOKE_TEST = 64, 32  # --smoke 에서 쓰는 작은 부분집합 크기


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


def _download_imdb(data_dir: Path) -> Path:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(IMDB_URL, download_root=str(data_dir), md5=IMDB_MD5,
                                 remove_finished=True)
    return data_dir / "aclImdb"


def load_imdb(mode: str, data_dir: str, smoke: bool, seed: int) -> TextSplits:
    """IMDB 리뷰를 데이터 정책(auto / real / offline)에 따라 불러옵니다.

    1) `<data_dir>/aclImdb/` 가 있으면 그대로 읽음 (분할이 빠졌으면 무엇이 없는지 말하는 오류)
    2) 없으면 시간 제한을 두고 torchvision 의 도우미로 내려받아 풀기
    3) 안 되면 절차적 리뷰(utils.synthetic.make_reviews)로 대신 (`--data real` 이면 오류)
    """
    data = None
    if wants_real_data(mode, smoke):
        root = Path(data_dir) / "aclImdb"
        reason = ""
        if not root.exists():
            downloaded, reason = try_download(lambda: _download_imdb(Path(data_dir)))
            root = downloaded if downloaded is not None else root
        if root.exists():
            data = TextSplits(*read_imdb_folder(root), name="IMDB aclImdb (real)")
        else:
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
