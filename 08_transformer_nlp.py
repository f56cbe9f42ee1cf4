"""08장. 트랜스포머(Transformer) 번역: 어텐션을 손으로, 마스크, 빔 탐색, BLEU.

학습 목표
    - 어텐션(attention)을 강의의 손 계산 예제로: 인코더 상태 h1=[1,0,0], h2=[0,1,1], h3=[1,1,0],
      디코더 상태 s=[2,1,1] → 점수 [2,2,3] → 가중치 ≈ [0.212, 0.212, 0.576] → 문맥 벡터
      ≈ [0.788, 0.788, 0.212] 를 코드로 계산하고 assert 로 확인합니다.
    - 스케일드 닷-프로덕트 어텐션(scaled dot-product attention) softmax(QKᵀ/√d_k)V 를 손으로 짜서
      `F.scaled_dot_product_attention` 과, 멀티-헤드 어텐션(multi-head attention)을 가중치를 복사한
      `nn.MultiheadAttention` 과 비교합니다. 왜 √d_k 로 나누는지 숫자로 봅니다.
    - 사인파 위치 인코딩(sinusoidal positional encoding): 순환(recurrence)이 없으면 순서를 모르기 때문.
    - 인코더·디코더 층(자기 어텐션, 교차 어텐션(cross-attention), 피드포워드, 잔차 + LayerNorm),
      패딩 마스크(padding mask)와 미래를 가리는 인과 마스크(causal / look-ahead mask)를 행렬로.
    - 학습: 교사 강요(teacher forcing), 레이블 스무딩(label smoothing), 워밍업(warm-up) 학습률,
      기울기 자르기(gradient clipping), GPU 에서만 혼합 정밀도(AMP).
    - 해독(decoding): 탐욕(greedy)과 빔 탐색(beam search, 길이 보정 length penalty)을 같은 best.pt 로.
    - BLEU-4 를 손으로(수정된 n-gram 정밀도, 간결성 벌점 brevity penalty, 말뭉치 단위) 짜서
      sacrebleu 와 비교하고, 결과를 이름 붙인 두 정의로 보고합니다.
    - 같은 스크립트를 torchrun 으로 여러 프로세스·여러 기계에서 DistributedDataParallel(DDP)로 학습합니다:
      환경 변수 RANK·LOCAL_RANK·WORLD_SIZE, DistributedSampler 와 set_epoch, 기울기 all-reduce,
      프로세스마다 번역한 시험 문장을 모아 BLEU 를 한 번에 (3-1절).

핵심 개념
    Q·K·V, √d_k, 헤드(head), 위치 인코딩, 마스크, 인코더-디코더, 교사 강요, 레이블 스무딩,
    워밍업 + 역제곱근 감쇠, 탐욕/빔 탐색, BLEU 의 두 정의:
      (1) sacreBLEU: 토큰을 다시 붙인(detokenised) 대소문자 그대로의 출력, 13a 토큰화 — 논문끼리
          비교할 수 있는 값이며 서명(signature)과 함께 적습니다. metrics.json 의 `test_bleu`.
      (2) 소문자 토큰 BLEU: 이 장의 토크나이저로 자른 소문자 토큰 위에서 — bentrevett 의 널리 인용되는
          튜토리얼(Multi30k 시험 36.5)과 같은 방식의 정의. `test_bleu_lowercase_tokens`.
    같은 번역이라도 정의에 따라 몇 점씩 다르게 나옵니다. 정의 없이 BLEU 를 비교하지 마세요.

실행 방법
    python 08_transformer_nlp.py                        # 오프라인: 절차적 영어→한국어 (기본)
    python 08_transformer_nlp.py --smoke                # 배치 하나로 몇 초 (테스트용)
    python 08_transformer_nlp.py --predict "The tall student reads a book."
    python 08_transformer_nlp.py --data real --data-dir ../shared/data/multi30k   # Multi30k 독→영
    python 08_transformer_nlp.py --data real --data-dir D --out-dir outputs/multi30k \\
        --predict "ein Mann fährt Fahrrad ."           # 그 학습의 best.pt 로 번역
    python 08_transformer_nlp.py --resume               # last.pt 에서 이어서
    GPU: python 08_transformer_nlp.py --data real --device cuda --batch-size 256 --epochs 20
         (CUDA 에서는 --amp 가 float16 혼합 정밀도를 켭니다; --model-size base 가 Multi30k 기본)
    여러 프로세스 (DDP, 3-1절): --batch-size 와 --lr 은 전체 값, 프로세스마다 batch-size/N 쌍.
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 08_transformer_nlp.py   # CPU 2개 (gloo)
    torchrun --standalone --nproc_per_node=4 08_transformer_nlp.py --data real --device cuda --batch-size 256
        (GPU 4장: 백엔드 nccl, 프로세스마다 cuda:LOCAL_RANK; GPU 보다 많은 --nproc_per_node 는 한 줄 오류)
    … --resume 을 붙이면 last.pt 에서 이어 갑니다: 프로세스 수가 달라도, torchrun 없이 한 프로세스로도 됩니다.
    두 기계 (기계마다 같은 명령, --node_rank 만 0 과 1; host:port = 첫 기계의 주소와 비어 있는 포트):
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv_endpoint host:29500 \\
        08_transformer_nlp.py --data real --data-dir D --device cuda
    torchrun --nnodes 2 --node_rank 1 --nproc_per_node 4 --rdzv_endpoint host:29500 \\
        08_transformer_nlp.py --data real --data-dir D --device cuda
    클러스터(SLURM): 기계마다 torchrun 하나를 srun 으로 띄우고, 약속 장소(rendezvous)는 첫 노드:
    srun --nodes 2 --ntasks-per-node 1 torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_id $SLURM_JOB_ID --rdzv_endpoint "$(scontrol show hostnames | head -n 1):29500" \\
        08_transformer_nlp.py --data real --data-dir D --device cuda
    여러 기계에서 달라지는 것: Multi30k 는 모든 기계의 --data-dir 에 미리 두고(동시에 내려받지 않게), 출력
    (체크포인트·그림·metrics.json)은 rank 0 의 기계에만 생깁니다 (--resume 때도 rank 0 이 읽어 나눠 줌).
    닿지 않는 주소: torchrun 은 스크립트를 띄우기 전에 자기 약속(rendezvous)에서 아무 말 없이 기다립니다
    (기본 600초, 이 스크립트가 어쩔 수 없는 부분). torchrun 에 --rdzv_conf timeout=60 (기본 static) 또는
    join_timeout=60 (c10d) 을 주면 그 뒤 torchrun 의 traceback 과 함께 끝납니다. 스크립트가 여는 프로세스
    그룹은 --dist-timeout 초(기본 60) 안에 못 만나면 "오류: …" 한 줄, 종료 코드 2 로 끝납니다.
    두 기계·SLURM·GPU(nccl) 명령은 이 저장소의 기계(GPU 없는 한 대)에서 시험하지 못했습니다. 한 기계의
    torchrun 2 프로세스(CPU, gloo)는 tests/test_ddp.py 가 시험합니다. 2코어 CPU 에서는 프로세스 2개(각
    1스레드)가 1개(2스레드)보다 빠르지 않을 수 있습니다: DDP 의 이득은 GPU 여러 장·기계 여러 대에서 나옵니다.
    --data auto 는 --data-dir(또는 그 아래 multi30k/)에 Multi30k 파일이 있거나 내려받을 수 있으면
    그것을, 아니면 오프라인 데이터를 씁니다. --model-size auto 는 오프라인이면 small
    (d=128, 2+2층), Multi30k 면 base(d=256, 8헤드, 3+3층, FF 512) 를 고릅니다.

기대 결과 (측정값; 벤치마크가 조용한 2코어 기계의 3회 중앙값으로 바꿔 적습니다)
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · procedural English→Korean (offline) · cpu · seeds 42, 43, 44
      test_bleu 100 · test_bleu_lowercase_tokens 100 · test_bleu_beam 100
      tokens_per_second 12,696 (12,683–12,745) · train_seconds 50.7 (50.51–50.84)
      wall 62.2 (62.0–62.7) s · peak 1.05 GB
    - `torchrun --nproc_per_node 2` `--data offline` · procedural English→Korean (offline) · cpu
      seeds 42
      test_bleu 100 · test_bleu_lowercase_tokens 100 · test_bleu_beam 100 · processes 2
      tokens_per_second 11,843 · train_seconds 54.44 · wall 68.8 s · peak 1.04 GB
    - `--data real --data-dir ../shared/data/multi30k` · Multi30k de→en (real) · cpu · seeds 42
      test_bleu 33.2 · test_bleu_lowercase_tokens 35.59 · test_bleu_beam 36.16
      tokens_per_second 2671 · train_seconds 912.3 · wall 994 s · peak 2.93 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    그 밖의 숫자는 이 장을 쓸 때 잰 값입니다 (조건을 함께 적음). 위 블록의 벽시계는 항목마다 적힌
    기계·torch 스레드 수로 잰 것입니다 (1 스레드 항목은 2코어에서 다른 측정과 나란히 돈 실행).
    - 오프라인 기본 실행 (학습 12,000 / 검증 300 / 시험 1,000 쌍, 시험은 학습에 없던 (주어, 동사)
      조합만, small 모델 689k 파라미터, 6 epoch, seed 42): 시험 sacreBLEU 100.0 (탐욕), 100.0 (빔 4),
      소문자 토큰 BLEU 100.0. 검증 손실은 epoch 1 → 2 에서 2.71 → 0.11 로 뚝 떨어집니다 (어순 규칙을
      깨치는 순간). 1 스레드 CPU 시간 104초, 최대 메모리 1.13 GB
      (2-core CPU, 다른 작업 여럿과 나눠 써서 벽시계로는 19분이 걸린 측정).
    - Multi30k test_2016_flickr (--data real, base 모델 7.6M 파라미터, 어휘 de 8,018 / en 6,278,
      6 epoch): 목표 sacreBLEU ≥ 35. 측정한 것: 1 스레드로 epoch 하나(배치 128 × 227걸음 + 검증)에
      CPU 시간 약 4분 15초. 1 스레드로 6 epoch 끝까지 잰 실행 (seed 42, 다른 작업과 CPU 를 나눠 44분):
      검증 혼잡도 24.8 → 10.1 → 7.6 → 6.5 → 5.9 → 5.6, best.pt = epoch 6 으로 시험 sacreBLEU 33.3
      (탐욕), 36.1 (빔 4); 소문자 토큰 BLEU 35.6 / 36.7 (bentrevett 튜토리얼의 36.5 와 같은 정의).
      탐욕 해독은 목표 35 에 못 미치고 빔 4 가 넘습니다. 조용한 기계의 2 스레드 측정은 위 [results] 블록
      (스레드 수가 다르면 부동소수점 합의 순서가 달라 숫자가 조금 다릅니다).
    - --predict 예 (오프라인 best.pt): "The tall student reads a book." → "키 큰 학생은 책을 읽는다."
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import sacrebleu
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

from utils import (
    distributed,  # 여러 프로세스(DDP)의 준비: distributed.start, .is_main, .barrier, …
    training,  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
)
from utils import visualization as viz  # 그림 저장은 이 장의 주제가 아니라 모듈 하나로 (viz.save_figure)
from utils.data.translation import load_translation_data
from utils.runtime import RunConfig, UserError, pick_device, run, set_seed, write_run_record

# 모양(shape) 글자: B=배치, S=원문 길이, T=번역문 길이, D=d_model, h=헤드 수, d_k=D/h (헤드 하나의 차원),
#                  V=어휘 크기, K=빔 크기

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"  # 어휘의 0~3번: 패딩, 모르는 단어, 문장 시작, 끝
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# --model-size: 이름 → 모델 크기. base 는 bentrevett 튜토리얼의 Multi30k 트랜스포머와 같은 크기
MODEL_SIZES = {
    "small": {"d_model": 128, "heads": 4, "layers": 2, "d_ff": 256},  # 어휘 ~100 의 절차적 문장에 충분
    "base": {"d_model": 256, "heads": 8, "layers": 3, "d_ff": 512},  # Multi30k: 1스레드로 epoch 당 수 분
}


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "08_transformer_nlp"  # 출력 폴더 이름, 체크포인트 주인 표시
    resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free | {"dist_timeout"}  # --resume 때 달라도 됨
    epochs: int = 6  # 오프라인은 4~5 epoch 에 시험 BLEU 가 거의 100, Multi30k 는 6~8 epoch 에 35 를 넘음
    batch_size: int = 128  # 문장 쌍 수. 길이가 비슷한 문장끼리 묶어 패딩 낭비를 줄임
    lr: float = 1e-3  # 워밍업이 끝났을 때의 최고 학습률 (Adam). 그 뒤 1/√걸음 으로 줄어듦
    warmup_epochs: float = 1.0  # 학습률을 0 → lr 로 선형으로 올리는 기간 (epoch 단위)
    model_size: Literal["auto", "small", "base"] = "auto"  # auto: 오프라인 small, Multi30k base
    dropout: float = 0.1  # 트랜스포머 논문의 값 (잔차·어텐션 가중치·임베딩)
    label_smoothing: float = 0.1  # 정답에 1-ε, 나머지 단어에 ε 를 나눠 줌 (논문의 값): 과신을 막음
    grad_clip: float = 1.0  # 기울기 노름(norm) 상한: 워밍업 초기의 큰 걸음을 막음
    min_freq: int = 2  # 학습 분할에서 이보다 적게 나온 단어는 <unk> (Multi30k 어휘 약 8k/6k)
    max_len: int = 64  # 문장당 최대 토큰 수(<bos>, <eos> 포함) = 위치 인코딩 표의 길이
    beam: int = 4  # 빔 탐색의 빔 크기 K (1 이면 탐욕 해독과 같음)
    length_penalty: float = 0.6  # GNMT 길이 보정 α: 점수를 ((5+길이)/6)^α 로 나눔 (0 = 보정 없음)
    amp: bool = True  # CUDA 에서만 float16 혼합 정밀도 (CPU 에서는 켜도 아무 일도 하지 않음)
    predict: str = None  # 문장을 주면 학습하지 않고 best.pt 로 번역 (None=학습)
    dist_timeout: float = 60.0  # 초: torchrun 의 다른 프로세스를 기다리는 최대 시간 (못 만나면 한 줄 오류)

    def __post_init__(self):
        for name in ("min_freq", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.max_len < 8:
            raise ValueError(f"--max-len 은 8 이상이어야 합니다 (받은 값: {self.max_len}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout 은 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout}).")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("--label-smoothing 은 0 이상 1 미만이어야 합니다 "
                             f"(받은 값: {self.label_smoothing}).")
        if self.warmup_epochs < 0 or self.length_penalty < 0:
            raise ValueError("--warmup-epochs 와 --length-penalty 는 0 이상이어야 합니다 "
                             f"(받은 값: {self.warmup_epochs}, {self.length_penalty}).")
        if self.grad_clip <= 0:
            raise ValueError(f"--grad-clip 은 0 보다 커야 합니다 (받은 값: {self.grad_clip}).")
        if not self.dist_timeout > 0:
            raise ValueError(f"--dist-timeout 은 0 보다 커야 합니다 (받은 값: {self.dist_timeout}).")


# %% 1. 데이터: 문장 → 토큰 → 어휘 → 정수 → 패딩
# 단어 단위 토크나이저(word-level tokenizer): 글자(\w, 한글·움라우트 포함)가 이어진 덩어리를 한 단어로,
# 문장부호는 한 글자씩 따로. 대소문자는 그대로 둡니다(sacreBLEU 는 대소문자를 구분해 채점).
#   "A man's bike, isn't it?" → ["A", "man's", "bike", ",", "isn't", "it", "?"]
# torchtext·spaCy 없이 정규식 하나: 설치가 깨질 일이 없고, 무엇을 하는지 한눈에 보입니다.
TOKEN_PATTERN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")  # 토큰을 붙일 때 앞 공백을 지울 문장부호
NO_SPACE_AFTER = re.compile(r"([(\[{]) ")


def tokenize(text: str) -> list[str]:
    """문장 → 단어·문장부호 토큰 목록.

    >>> tokenize("Ein Mann fährt Fahrrad.")
    ['Ein', 'Mann', 'fährt', 'Fahrrad', '.']
    >>> tokenize("키 큰 학생은 책을 읽는다.")
    ['키', '큰', '학생은', '책을', '읽는다', '.']
    """
    return TOKEN_PATTERN.findall(text)


def detokenize(tokens: list[str]) -> str:
    """토큰 → 사람이 쓰는 문장 (sacreBLEU 가 원문 참조와 같은 조건에서 채점하도록).

    >>> detokenize(['A', 'man', ',', 'a', 'dog', '(', 'brown', ')', '.'])
    'A man, a dog (brown).'
    """
    return NO_SPACE_AFTER.sub(r"\1", NO_SPACE_BEFORE.sub(r"\1", " ".join(tokens)))


def build_vocab(token_lists: list[list[str]], min_freq: int) -> list[str]:
    """학습 분할의 토큰만으로 어휘(번호 → 토큰, itos)를 만듭니다. 0~3번은 특수 토큰.

    검증·시험 문장을 보면 '모르는 단어'가 얼마나 되는지 정직하게 잴 수 없으므로(데이터 누수)
    학습 분할만 씁니다. 빈도 내림차순, 같은 빈도는 사전순 (실행마다 같은 번호).
    """
    counts = Counter(token for tokens in token_lists for token in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, UNK, BOS, EOS] + words


def encode(tokens: list[str], stoi: dict[str, int], max_len: int) -> list[int]:
    """토큰 → [<bos>, 번호..., <eos>], 모르는 단어는 <unk>, 최대 max_len 개 (넘으면 뒤를 자름)."""
    return [BOS_ID] + [stoi.get(t, UNK_ID) for t in tokens[: max_len - 2]] + [EOS_ID]


def pad_sequences(sequences: list[list[int]]) -> torch.Tensor:
    """길이가 다른 번호 목록들 → (N, L_max) 정수 텐서, 뒤를 <pad>=0 으로 채움."""
    padded = torch.full((len(sequences), max(len(s) for s in sequences)), PAD_ID, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = torch.tensor(sequence)
    return padded


@dataclass
class EncodedSplit:
    """한 분할 전체를 텐서로 (한 번에 메모리에 들어가므로 DataLoader 없이 잘라 씁니다)."""

    source: torch.Tensor  # (N, S_max) <bos> 원문 <eos> <pad>...
    target: torch.Tensor  # (N, T_max) <bos> 번역문 <eos> <pad>...
    source_texts: list[str]
    target_texts: list[str]  # 채점용 참조 번역 (원문 그대로, 토큰화 전)


def encode_split(pairs: list[tuple[str, str]], source_stoi: dict, target_stoi: dict, max_len: int):
    source = pad_sequences([encode(tokenize(s), source_stoi, max_len) for s, _ in pairs])
    target = pad_sequences([encode(tokenize(t), target_stoi, max_len) for _, t in pairs])
    return EncodedSplit(source, target, [s for s, _ in pairs], [t for _, t in pairs])


def prepare_data(config: Config):
    """데이터 정책대로 문장 쌍을 읽고 → 어휘 두 개(원문, 번역문)와 텐서 분할 셋. 요약을 출력합니다.

    반환: (data, source_itos, target_itos, train, validation, test). data 는 이름·언어를 가진 원문 쌍.
    """
    data = load_translation_data(config.data, config.data_dir, config.smoke, config.seed)
    source_itos = build_vocab([tokenize(s) for s, _ in data.train], config.min_freq)
    target_itos = build_vocab([tokenize(t) for _, t in data.train], config.min_freq)
    source_stoi = {w: i for i, w in enumerate(source_itos)}
    target_stoi = {w: i for i, w in enumerate(target_itos)}
    splits = [encode_split(pairs, source_stoi, target_stoi, config.max_len)
              for pairs in (data.train, data.val, data.test)]
    unknown = (splits[2].source == UNK_ID).sum().item() / (splits[2].source > EOS_ID).sum().item()
    print(f"[데이터] {data.name}: 학습 {len(data.train):,} / 검증 {len(data.val):,} / "
          f"시험 {len(data.test):,} 쌍, "
          f"어휘 {data.source_language} {len(source_itos):,} / {data.target_language} {len(target_itos):,} "
          f"(학습 분할, 최소 빈도 {config.min_freq}), 시험 원문의 <unk> {unknown:.1%}")
    source, target = data.train[0]
    print(f"  예: {source!r} → {tokenize(source)} → {encode(tokenize(source), source_stoi, config.max_len)}\n"
          f"      {target!r} → {tokenize(target)}")
    return data, source_itos, target_itos, *splits


def make_batches(split: EncodedSplit, batch_size: int, generator: torch.Generator | None,
                 sampler: DistributedSampler | None = None) -> list[torch.Tensor]:
    """배치마다의 행 번호. generator 가 있으면 섞되, 길이가 비슷한 문장끼리 묶습니다(bucketing).

    1) 무작위 순서  2) 큰 덩어리(배치 50개 분량)마다 원문 길이로 정렬  3) 배치로 자름  4) 배치 순서를 섞음.
    패딩이 줄어 같은 계산으로 더 많은 진짜 토큰을 학습합니다. 난수는 모두 `generator` 에서 나오므로
    체크포인트가 그 상태를 저장하면 --resume 이 같은 순서로 이어집니다.
    DDP(3-1절): 1) 의 무작위 순서 대신 `sampler` 가 준 이 프로세스의 몫(이미 섞임)을 같은 방식으로 묶고,
    이 epoch 의 난수(4) 의 배치 순서, 학습의 드롭아웃)를 (seed, epoch, rank) 로 새로 정합니다: rank 마다
    다르게, 그리고 프로세스 수가 달라져도 이어하기가 같게 (utils/distributed.seed_epoch).
    """
    n = len(split.source)
    if generator is None:
        return list(torch.arange(n).split(batch_size))
    lengths = (split.source != PAD_ID).sum(dim=1)  # (N,)
    if sampler is None:
        order = torch.randperm(n, generator=generator)
    else:
        distributed.seed_epoch(sampler.seed, sampler.epoch, [generator])
        order = torch.tensor(list(sampler))  # 이 프로세스의 몫: (seed + epoch) 로 섞은 전체의 rank 번째 줄
    batches = [rows for chunk in order.split(batch_size * 50)
               for rows in chunk[lengths[chunk].argsort(stable=True)].split(batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def take_batch(split: EncodedSplit, rows: torch.Tensor, device: torch.device):
    """배치를 잘라 이 배치의 가장 긴 문장까지만 남깁니다: source (B, S), target (B, T)."""
    source, target = split.source[rows], split.target[rows]
    source = source[:, : int((source != PAD_ID).sum(dim=1).max())]
    target = target[:, : int((target != PAD_ID).sum(dim=1).max())]
    return source.to(device), target.to(device)


# %% 2. 모델: 어텐션 → 멀티-헤드 → 위치 인코딩 → 인코더·디코더 층 → 트랜스포머
def attention_worked_example() -> dict:
    """강의의 손 계산 예제: 디코더 상태 s 가 인코더 상태 h1..h3 중 어디를 볼지.

    점수 e_i = s·h_i (내적) → 가중치 α = softmax(e) → 문맥 벡터 c = Σ α_i h_i.
    """
    encoder_states = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # h1, h2, h3 (3, 3)
    decoder_state = torch.tensor([2.0, 1.0, 1.0])  # s (3,)
    scores = encoder_states @ decoder_state  # (3,) = [2·1, 1·1 + 1·1, 2·1 + 1·1] = [2, 2, 3]
    weights = scores.softmax(dim=0)  # e^2 : e^2 : e^3 → [0.212, 0.212, 0.576]
    context = weights @ encoder_states  # (3,) = 0.212·h1 + 0.212·h2 + 0.576·h3
    assert torch.equal(scores, torch.tensor([2.0, 2.0, 3.0]))
    assert torch.allclose(weights, torch.tensor([0.212, 0.212, 0.576]), atol=1e-3)
    assert torch.allclose(context, torch.tensor([0.788, 0.788, 0.212]), atol=1e-3)
    print(f"[어텐션 손 계산] 점수 {scores.tolist()} → 가중치 {[round(w, 3) for w in weights.tolist()]} "
          f"→ 문맥 {[round(c, 3) for c in context.tolist()]} (강의 값과 같음, assert 통과)")
    return {"scores": scores, "weights": weights, "context": context}


def scaled_dot_product_attention(query, key, value, mask=None, dropout_p: float = 0.0):
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V   (Vaswani et al., 2017, 식 1)

    query (..., T_q, d_k), key (..., T_k, d_k), value (..., T_k, d_v),
    mask  (..., T_q, T_k) 로 브로드캐스트되는 bool: True = 볼 수 있음, False = 가림.
    반환: 출력 (..., T_q, d_v), 어텐션 가중치 (..., T_q, T_k) (행마다 합 1).
    """
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # e^-inf = 0: 가린 위치의 가중치는 정확히 0
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ value, weights  # (..., T_q, d_v)


def check_attention(seed: int) -> None:
    """강의 예제 → 손 어텐션 vs PyTorch → 손 멀티-헤드 vs nn.MultiheadAttention (모두 assert)."""
    attention_worked_example()
    gaps = check_attention_against_pytorch(seed), check_multi_head_against_pytorch(seed)
    print(f"[검증] 손 어텐션 vs F.scaled_dot_product_attention {gaps[0]:.1e}, "
          f"멀티-헤드 vs nn.MultiheadAttention {gaps[1]:.1e} (최대 차이, assert 통과)")


def check_attention_against_pytorch(seed: int) -> float:
    """손 어텐션 = F.scaled_dot_product_attention (마스크 포함). 최대 차이를 돌려줍니다."""
    generator = torch.Generator().manual_seed(seed)
    query, key, value = (torch.randn(2, 4, 5, 16, generator=generator) for _ in range(3))  # (B, h, T, d_k)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()  # 인과 마스크: 대각선 아래만 볼 수 있음
    ours, _ = scaled_dot_product_attention(query, key, value, mask)
    reference = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)  # 같은 규약: True = 봄
    assert torch.allclose(ours, reference, atol=1e-5)
    return (ours - reference).abs().max().item()


def why_scale_by_sqrt_dk(seed: int) -> dict[int, tuple[float, float]]:
    """왜 √d_k 로 나누나: 성분이 평균 0·분산 1 인 q, k 의 내적 q·k = Σ q_i k_i 는 분산이 d_k.

    d_k 가 크면 점수의 폭이 √d_k 배로 커지고 softmax 가 거의 원-핫(one-hot)이 되어 기울기가 사라집니다.
    √d_k 로 나누면 d_k 와 무관하게 점수의 표준편차가 1 근처에 머뭅니다.
    반환: d_k → (나누지 않았을 때, 나눴을 때) 열 개 키 중 가장 큰 가중치의 평균.
    """
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for d_k in (4, 64, 512):
        query = torch.randn(1000, 1, d_k, generator=generator)  # 질의 1000개
        key = torch.randn(1000, 10, d_k, generator=generator)  # 질의마다 키 10개
        scores = (query @ key.transpose(1, 2)).squeeze(1)  # (1000, 10)
        result[d_k] = (scores.softmax(-1).max(-1).values.mean().item(),
                       (scores / math.sqrt(d_k)).softmax(-1).max(-1).values.mean().item())
        print(f"[√d_k] d_k={d_k:>3}: 점수 표준편차 {scores.std():5.1f} "
              f"(나누면 {(scores / math.sqrt(d_k)).std():.2f}), "
              f"가장 큰 가중치 평균 {result[d_k][0]:.2f} (나누면 {result[d_k][1]:.2f})")
    return result


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W_O,  head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i)

    D 차원을 h 개의 d_k = D/h 조각으로 나눠 헤드마다 따로 어텐션합니다. 헤드마다 다른 관계
    (어순, 일치, 짝이 되는 단어)를 볼 수 있고, 계산량은 헤드 하나로 D 차원 전체를 볼 때와 같습니다.
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} 은 heads {heads} 로 나누어떨어져야 합니다")
        self.heads, self.d_k, self.dropout = heads, d_model // heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)  # h 개 헤드의 W_Q 를 한 행렬로
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)  # W_O

    def forward(self, query, key, value, mask=None, need_weights: bool = False):
        """query (B, T_q, D), key·value (B, T_k, D), mask (B, 1, T_q 또는 1, T_k) bool True=봄.

        반환: (B, T_q, D) 와 가중치 (B, h, T_q, T_k) (need_weights 일 때만; 아니면 None).
        가중치가 필요 없으면 PyTorch 의 융합 커널(F.scaled_dot_product_attention)로 더 빠르게 계산합니다.
        두 길이 같은 값을 낸다는 것은 check_attention_against_pytorch 와 테스트가 확인합니다.
        """
        B, T_q, D = query.shape

        def split_heads(x, projection):  # (B, T, D) → (B, T, h, d_k) → (B, h, T, d_k)
            return projection(x).view(B, -1, self.heads, self.d_k).transpose(1, 2)

        q = split_heads(query, self.q_proj)  # (B, h, T_q, d_k)
        k, v = split_heads(key, self.k_proj), split_heads(value, self.v_proj)  # (B, h, T_k, d_k)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
        out = out.transpose(1, 2).reshape(B, T_q, D)  # (B, h, T_q, d_k) → (B, T_q, h·d_k): 헤드 이어 붙이기
        return self.out_proj(out), weights


def check_multi_head_against_pytorch(seed: int) -> float:
    """우리 멀티-헤드 어텐션 = 가중치를 복사한 nn.MultiheadAttention. 최대 차이를 돌려줍니다.

    규약 차이 주의: 우리 마스크는 True = 볼 수 있음, nn.MultiheadAttention 의 key_padding_mask 는
    True = 가림(무시). 그래서 `~mask` 를 넘깁니다.
    """
    torch.manual_seed(seed)  # 두 모듈의 초기 가중치 (곧 덮어씀)
    d_model, heads = 32, 4
    ours, reference = MultiHeadAttention(d_model, heads, 0.0).eval(), nn.MultiheadAttention(
        d_model, heads, batch_first=True).eval()
    with torch.no_grad():  # nn.MultiheadAttention 은 W_Q, W_K, W_V 를 세로로 쌓은 (3D, D) 한 행렬을 씀
        reference.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight,
                                                  ours.v_proj.weight]))
        reference.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        reference.out_proj.weight.copy_(ours.out_proj.weight)
        reference.out_proj.bias.copy_(ours.out_proj.bias)
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(2, 5, d_model, generator=generator)  # (B, T_q, D) 디코더 쪽
    memory = torch.randn(2, 7, d_model, generator=generator)  # (B, T_k, D) 인코더 출력
    keep = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])  # (B, T_k): 둘째 문장은 뒤 3개가 패딩
    with torch.no_grad():
        out, weights = ours(query, memory, memory, keep[:, None, None, :], need_weights=True)
        expected, expected_weights = reference(query, memory, memory, key_padding_mask=~keep,
                                               average_attn_weights=False)
    assert torch.allclose(out, expected, atol=1e-5) and torch.allclose(weights, expected_weights, atol=1e-6)
    return (out - expected).abs().max().item()


def positional_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """사인파 위치 인코딩 (max_len, D):  PE[pos, 2i] = sin(pos / 10000^(2i/D)),  PE[pos, 2i+1] = cos(같은 각).

    어텐션은 순서를 모릅니다(입력 순서를 바꾸면 출력도 똑같이 바뀔 뿐). 그래서 위치마다 다른
    벡터를 임베딩에 더해 줍니다. 차원마다 파장이 2π 에서 10000·2π 까지 기하급수로 늘어나, 가까운
    위치와 먼 위치를 모두 구별할 수 있고, PE[pos+k] 는 PE[pos] 의 회전(선형 변환)이라
    상대 위치를 배우기 쉽습니다.
    """
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (D/2,) = 0, 2, 4, ...
    frequency = torch.pow(10000.0, -two_i / d_model)  # (D/2,) = 1 / 10000^(2i/D)
    encoding = torch.zeros(max_len, d_model)
    encoding[:, 0::2] = torch.sin(position * frequency)  # (L, D/2) 짝수 차원
    encoding[:, 1::2] = torch.cos(position * frequency)  # 홀수 차원
    return encoding


def padding_mask(tokens: torch.Tensor) -> torch.Tensor:
    """(B, L) 토큰 → (B, 1, 1, L) bool: 진짜 토큰 True, <pad> False. 헤드·질의 축으로 브로드캐스트."""
    return (tokens != PAD_ID)[:, None, None, :]


def causal_mask(length: int, device=None) -> torch.Tensor:
    """(L, L) bool 아래 삼각 행렬: 위치 t 는 0..t 만 봄. 교사 강요로 정답 문장 전체를 한 번에 넣어도
    미래 단어를 미리 볼 수 없게 해, 학습과 (한 단어씩 만드는) 해독 조건을 같게 합니다."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class FeedForward(nn.Module):
    """위치별 피드포워드: FFN(x) = max(0, x W1 + b1) W2 + b2. 위치마다 같은 2층 MLP (D → d_ff → D)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))

    def forward(self, x):
        return self.net(x)


class EncoderLayer(nn.Module):
    """x = x + Dropout(SelfAttn(LN(x)));  x = x + Dropout(FFN(LN(x)))

    LayerNorm 을 잔차 가지 안쪽(앞)에 두는 pre-LN 배치(nanoGPT, GPT-2 와 같음)입니다. 원 논문은
    잔차를 더한 뒤에 정규화(post-LN)했지만, pre-LN 은 잔차 길이 정규화 없이 곧게 이어져 깊어도
    기울기가 잘 흐르고 워밍업에 덜 민감합니다.
    """

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, source_mask):  # x (B, S, D), source_mask (B, 1, 1, S)
        h = self.norm1(x)
        x = x + self.dropout(self.self_attention(h, h, h, source_mask)[0])
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class DecoderLayer(nn.Module):
    """자기 어텐션(인과 마스크) → 교차 어텐션(질의 = 디코더, 키·값 = 인코더 출력) → FFN, 각각 pre-LN 잔차."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attention = MultiHeadAttention(d_model, heads, dropout)
        self.cross_attention = MultiHeadAttention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, memory, target_mask, source_mask, need_weights: bool = False):
        """x (B, T, D), memory (B, S, D), target_mask (B, 1, T, T), source_mask (B, 1, 1, S).
        반환: (B, T, D) 와 교차 어텐션 가중치 (B, h, T, S) 또는 None."""
        h = self.norm1(x)
        x = x + self.dropout(self.self_attention(h, h, h, target_mask)[0])
        attended, weights = self.cross_attention(self.norm2(x), memory, memory, source_mask, need_weights)
        x = x + self.dropout(attended)
        return x + self.dropout(self.feed_forward(self.norm3(x))), weights


class Transformer(nn.Module):
    """인코더-디코더 트랜스포머 (Vaswani et al., 2017), pre-LN, 출력층과 번역문 임베딩의 가중치 공유."""

    def __init__(self, source_vocab_size: int, target_vocab_size: int, d_model: int, heads: int, layers: int,
                 d_ff: int, dropout: float, max_len: int):
        super().__init__()
        self.d_model = d_model
        self.source_embedding = nn.Embedding(source_vocab_size, d_model, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocab_size, d_model, padding_idx=PAD_ID)
        # persistent=False: 위치 인코딩은 공식으로 다시 만들 수 있으므로 체크포인트에 넣지 않음
        self.register_buffer("positional_encoding", positional_encoding(max_len, d_model), persistent=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(d_model, heads, d_ff, dropout)
                                            for _ in range(layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(d_model, heads, d_ff, dropout)
                                            for _ in range(layers))
        # pre-LN 은 마지막 층 출력을 정규화하지 않으므로 끝에 한 번 더
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, target_vocab_size, bias=False)
        # 가중치 공유(weight tying, 논문 3.4절): 단어 → 벡터(임베딩)와 벡터 → 단어 점수(출력층)가 같은 행렬.
        # 파라미터가 V·D 만큼 줄고, 작은 데이터에서 드문 단어의 두 표현이 함께 학습됩니다.
        self.output.weight = self.target_embedding.weight
        for embedding in (self.source_embedding, self.target_embedding):
            # 표준편차 1/√D 로 두면 임베딩 × √D 는 분산 1 (위치 인코딩과 같은 크기), 출력 로짓도 분산 ~1
            nn.init.normal_(embedding.weight, std=d_model**-0.5)

    def embed(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) → (B, L, D): 임베딩 × √D + 위치 인코딩 (논문 3.4절: 두 값의 크기를 맞춤)."""
        position = self.positional_encoding[: tokens.size(1)]  # (L, D), 배치 축으로 브로드캐스트
        return self.dropout(embedding(tokens) * math.sqrt(self.d_model) + position)

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """원문 (B, S) → 메모리(memory) (B, S, D): 디코더가 교차 어텐션으로 읽는 원문의 표현."""
        x = self.embed(self.source_embedding, source)
        for layer in self.encoder_layers:
            x = layer(x, source_mask)
        return self.encoder_norm(x)

    def decode(self, target_in: torch.Tensor, memory, source_mask, need_weights: bool = False):
        """번역문 앞부분 (B, T) + 메모리 → 은닉 (B, T, D) 와
        마지막 층의 교차 어텐션 (B, h, T, S) 또는 None."""
        T = target_in.size(1)
        target_mask = padding_mask(target_in) & causal_mask(T, target_in.device)  # (B, 1, T, T)
        x, weights = self.embed(self.target_embedding, target_in), None
        for layer in self.decoder_layers:
            x, weights = layer(x, memory, target_mask, source_mask, need_weights)
        return self.decoder_norm(x), weights

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        """교사 강요 학습: 원문 (B, S) 과 정답 번역문의 앞부분 (B, T) → 다음 단어 로짓 (B, T, V)."""
        source_mask = padding_mask(source)
        hidden, _ = self.decode(target_in, self.encode(source, source_mask), source_mask)
        return self.output(hidden)


def model_arguments(config: Config, data_name: str, source_itos: list[str], target_itos: list[str]) -> dict:
    """체크포인트에 저장할 model_args. --model-size auto: 절차적 데이터에는 small, Multi30k 에는 base."""
    size = config.model_size
    if size == "auto":
        size = "base" if "Multi30k" in data_name else "small"
    return {"source_vocab_size": len(source_itos), "target_vocab_size": len(target_itos),
            **MODEL_SIZES[size], "dropout": config.dropout, "max_len": config.max_len}


def build_model(source_vocab_size: int, target_vocab_size: int, d_model: int, heads: int, layers: int,
                d_ff: int, dropout: float, max_len: int) -> Transformer:
    """model_args(체크포인트에 저장) → 모델. --resume 과 --predict 가 이 함수로 같은 모델을 다시 만듭니다."""
    return Transformer(source_vocab_size, target_vocab_size, d_model, heads, layers, d_ff, dropout, max_len)


def show_masks(split: EncodedSplit, target_itos: list[str]) -> dict[str, torch.Tensor]:
    """짧은 문장과 긴 문장 두 개로 패딩 마스크와 디코더 마스크(패딩 & 인과)를 0/1 행렬로 출력합니다."""
    lengths = (split.target != PAD_ID).sum(dim=1)
    shortest = lengths.argmin()
    longer = (lengths - lengths[shortest] - 4).abs().argmin()  # 네 토큰쯤 긴 문장: 행렬이 화면에 들어가게
    rows = torch.stack([shortest, longer])
    _, target = take_batch(split, rows, torch.device("cpu"))
    target_in = target[:, :-1]  # (2, T) 교사 강요 입력: <eos> 를 뺀 앞부분
    masks = {"padding": padding_mask(target_in)[0, 0, 0].int(),  # 짧은 문장의 (T,)
             "decoder": (padding_mask(target_in) & causal_mask(target_in.size(1)))[0, 0].int()}  # (T, T)
    tokens = [target_itos[i] for i in target_in[0].tolist()]
    print(f"[마스크] 짧은 문장 {tokens}\n  패딩 마스크(1=진짜 토큰): {masks['padding'].tolist()}\n"
          "  디코더 마스크 = 패딩 & 인과 (행 = 질의 위치, 열 = 볼 수 있는 키 위치):")
    for token, row in zip(tokens, masks["decoder"].tolist()):
        print(f"    {token[:8]:>8} {' '.join(map(str, row))}")
    return masks | {"tokens": tokens}


# %% 3. 학습: 교사 강요, 레이블 스무딩, 워밍업, 기울기 자르기, AMP
def warmup_inverse_sqrt(warmup_steps: int):
    """학습률 배수(LambdaLR 용): 처음 warmup 걸음 동안 0 → 1 선형 증가, 그 뒤 √(warmup/걸음) 으로 감소.

    논문의 lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) 와 같은 모양 (최고값만 --lr 로).
    초기에 Adam 의 2차 모멘트 추정이 부정확할 때 큰 걸음을 막는 것이 워밍업의 이유입니다.
    """
    warmup_steps = max(1, warmup_steps)
    return lambda step: min((step + 1) / warmup_steps, math.sqrt(warmup_steps / (step + 1)))


def make_optimizer(model, config: Config, steps_per_epoch: int, device):
    """Adam(β2=0.98, ε=1e-9: 논문의 값) + 워밍업 일정 + (CUDA 에서만 켜지는) 손실 배율기(GradScaler).

    일정은 epoch 수와 무관하므로 --epochs 를 늘려 이어 해도 앞부분의 학습률이 같습니다.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_inverse_sqrt(warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    return optimizer, scheduler, scaler


def train_one_epoch(model, split, batches, optimizer, scheduler, scaler, config: Config, device, epoch: int,
                    max_batches: int | None = None) -> float:
    """한 epoch 학습. 반환: <pad> 를 뺀 토큰당 평균 손실 (레이블 스무딩 포함).

    DDP(3-1절): model 은 DDP 로 감싼 모델, batches 는 이 프로세스의 몫. 손실은 배치의 토큰 평균이고 DDP 는
    프로세스마다의 기울기를 평균하므로, 프로세스마다 토큰 수가 다르면 한 프로세스 × 전체 배치의 기울기와
    조금 다릅니다 (토큰이 적은 배치의 토큰 하나가 조금 더 무겁게 셈). 학습에는 문제가 없는 차이입니다.
    """
    model.train()  # 드롭아웃 켜기
    total_loss, total_tokens = torch.zeros((), device=device), 0
    for step, rows in enumerate(training.progress(batches[:max_batches], desc=f"epoch {epoch}")):
        source, target = take_batch(split, rows, device)
        # 교사 강요(teacher forcing): 디코더 입력은 정답의 <bos>..마지막 단어, 목표는 한 칸 민 단어..<eos>.
        # 모델이 앞에서 틀려도 다음 입력은 정답이라, 모든 위치를 병렬로 한 번에 학습합니다.
        target_in, target_out = target[:, :-1], target[:, 1:]  # (B, T-1) 둘 다
        with torch.amp.autocast(device_type=device.type, dtype=torch.float16,
                                enabled=config.amp and device.type == "cuda"):
            logits = model(source, target_in)  # (B, T-1, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), target_out.flatten(),  # (B·(T-1), V)
                                   ignore_index=PAD_ID, label_smoothing=config.label_smoothing)
        training.check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        # float16 의 작은 기울기가 0 으로 사라지지 않게 손실을 키워서 역전파 (CPU 에서는 그대로)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # 자르기 전에 원래 크기로
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # 학습률은 epoch 이 아니라 걸음(step)마다
        tokens = int((target_out != PAD_ID).sum())
        total_loss += loss.detach() * tokens
        total_tokens += tokens
    if distributed.is_distributed():  # 기록할 평균: 모든 프로세스의 (손실 합, 토큰 수)를 더해서 나눔
        loss_sum, tokens = sum_over_processes([total_loss.item(), total_tokens], device)
        return loss_sum / tokens
    return (total_loss / total_tokens).item()


# %% 3-1. 여러 프로세스로 학습: torchrun + DistributedDataParallel (DDP)
# `torchrun --nproc_per_node=N 08_transformer_nlp.py …` 는 이 스크립트를 N 번 띄우고 프로세스마다 환경 변수
# RANK(전체에서 몇 번째, 0…N-1), LOCAL_RANK(이 기계에서 몇 번째 = GPU 번호), WORLD_SIZE(N)를 줍니다.
# 모든 프로세스가 이 파일을 위에서부터 똑같이 실행하고, 달라지는 곳은 넷뿐입니다:
#   1) 데이터: DistributedSampler 가 학습 문장을 N 몫으로 나눠, 프로세스마다 서로 다른 B/N 쌍을 봅니다
#      (그 몫 안에서 길이가 비슷한 문장끼리 묶는 것은 한 프로세스일 때와 같음: make_batches).
#   2) 기울기: DDP 로 감싼 모델은 backward() 도중 모든 프로세스의 기울기를 all-reduce 로 평균합니다.
#      그래서 모든 프로세스가 같은 기울기로 같은 optimizer.step() 을 하고, 가중치가 끝까지 같습니다
#      (기울기 자르기 clip_grad_norm_ 도 평균된 같은 기울기에 하므로 모두 같음).
#   3) 평가: 검증 손실은 (손실 합, 토큰 수)를, 시험 번역은 문장들을 모든 프로세스에서 모아 전체로 셈.
#   4) 출력·그림·체크포인트·metrics.json 은 rank 0 만. 다른 프로세스는 저장이 끝날 때까지 barrier 에서
#      기다림. 시험 평가가 끝나면 프로세스 그룹을 닫고(distributed.end) 그림·부록·기록은 rank 0 혼자.
# --batch-size 와 --lr 은 전체(global) 값입니다: 프로세스마다 batch-size/N 쌍, 학습률은 그대로. 그래서 한
# epoch 의 걸음 수와 워밍업 일정이 N 과 상관없이 같고, 체크포인트를 다른 N 으로 이어 갈 수 있습니다.
def setup_ddp(config: Config) -> tuple[torch.device, int]:
    """torchrun 아래면 프로세스 그룹에 들어갑니다. 반환: (이 프로세스의 장치, 프로세스 수 N).

    torchrun 없이 실행하면 (--device 의 장치, 1): 지금까지와 똑같은 한 프로세스 학습입니다.
    백엔드는 장치로 정해집니다: CUDA 면 nccl(장치 cuda:LOCAL_RANK), CPU 면 gloo (utils/distributed.py).
    """
    device = distributed.start(config.device, config.dist_timeout, batch_size=config.batch_size)
    world = distributed.world_size()
    if distributed.is_distributed():
        print(f"[DDP] 프로세스 {world}개 ({dist.get_backend()}, {device}): 프로세스마다 배치 "
              f"{config.batch_size // world}쌍 × {world} = 전체 배치 {config.batch_size}, 학습률 {config.lr}")
    return device, world


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """모델을 DDP 로 감쌉니다 (프로세스 그룹이 없으면 그대로). 장치로 옮긴 '뒤에' 감쌉니다.

    DDP 는 감쌀 때 rank 0 의 가중치를 모두에게 보내고(broadcast), backward() 때 기울기를 평균합니다.
    트랜스포머에는 BatchNorm 이 없습니다: LayerNorm 은 문장(토큰)마다 따로 정규화하므로 배치를 나눠도
    계산이 같고, 프로세스끼리 맞춰야 할 배치 통계도 없습니다 (03장의 SyncBatchNorm 과 비교).
    """
    if not distributed.is_distributed():
        return model
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def make_sampler(size: int, seed: int) -> DistributedSampler | None:
    """DDP: 0…size-1 중 이 프로세스의 몫. 프로세스 그룹이 없으면 None (make_batches 가 randperm 을 씀).

    DistributedSampler 는 (seed + epoch) 로 전체 순서를 섞고 rank, rank+N, rank+2N, … 번째를 가집니다.
    모든 프로세스가 같은 순서를 만들어야 몫이 겹치지 않으므로, epoch 마다 sampler.set_epoch(epoch) 를
    불러야 합니다: 부르지 않으면 매 epoch 똑같은 순서를 되풀이합니다. 순서가 seed 와 epoch 만으로 정해지므로
    다른 프로세스 수로 이어 가도 됩니다. size 가 N 으로 나누어떨어지지 않으면 앞쪽 몇 개를 되풀이해
    채웁니다: 학습에는 상관없지만 평가에 쓰면 그 문장이 두 번 세어지므로 평가는 shard_rows 로 나눕니다.
    """
    if not distributed.is_distributed():
        return None
    return DistributedSampler(range(size), num_replicas=dist.get_world_size(), rank=dist.get_rank(),
                              shuffle=True, seed=seed)


def shard_rows(size: int) -> torch.Tensor:
    """평가할 행 번호: 한 프로세스면 0…size-1 전부, DDP 면 rank, rank+N, … (모든 행을 정확히 한 번씩)."""
    rows = torch.arange(size)
    return rows[dist.get_rank()::dist.get_world_size()] if distributed.is_distributed() else rows


def sum_over_processes(values: list[float], device) -> list[float]:
    """DDP: 프로세스마다의 값들을 모든 프로세스에서 더합니다 (all_reduce, SUM). 한 프로세스면 그대로.

    평균은 (합, 개수)를 더한 뒤 나눕니다: 프로세스마다의 평균을 다시 평균하면, 몫마다 토큰 수가 다를 때
    (문장 길이가 다름) 전체 평균과 달라집니다.
    """
    if not distributed.is_distributed():
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


# %% 4. 평가: 손실, 탐욕·빔 해독, BLEU
@torch.no_grad()
def evaluate(model, split, device, batch_size: int, max_batches: int | None = None) -> dict:
    """교사 강요 손실(레이블 스무딩 없는 진짜 교차 엔트로피)과 혼잡도(perplexity).

    no_grad: 기울기 그래프를 만들지 않아 빠르고 메모리를 덜 씀. eval(): 드롭아웃을 꺼서 결정적.
    """
    model.eval()
    total_loss, total_tokens = 0.0, 0
    for rows in shard_rows(len(split.source)).split(batch_size)[:max_batches]:  # DDP: 이 프로세스의 몫만
        source, target = take_batch(split, rows, device)
        logits = model(source, target[:, :-1])  # (B, T-1, V)
        total_loss += F.cross_entropy(logits.flatten(0, 1).float(), target[:, 1:].flatten(),
                                      ignore_index=PAD_ID, reduction="sum").item()
        total_tokens += int((target[:, 1:] != PAD_ID).sum())
    total_loss, total_tokens = sum_over_processes([total_loss, total_tokens], device)  # DDP: 모두 더함
    loss = total_loss / total_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def max_new_tokens(source: torch.Tensor, max_len: int) -> int:
    """해독할 최대 길이: 원문 길이의 1.5배 + 10 (번역이 원문보다 아주 길지는 않음), 위치 인코딩 표 안에서."""
    return min(int(source.size(1) * 1.5) + 10, max_len - 1)


@torch.no_grad()
def greedy_decode(model, source: torch.Tensor, max_len: int) -> torch.Tensor:
    """탐욕 해독: 매 걸음 확률이 가장 큰 단어 하나. source (B, S) → (B, L) 번호 (<eos> 뒤는 <pad>).

    KV 캐시 없이 매 걸음 지금까지의 번역문 전체를 디코더에 다시 넣습니다 (짧은 문장이라 충분; 긴 글에서는
    이전 걸음의 키·값을 저장해 두는 KV 캐시가 계산을 L² → L 로 줄입니다).
    """
    model.eval()
    source_mask = padding_mask(source)
    memory = model.encode(source, source_mask)  # 원문은 한 번만 인코딩
    tokens = torch.full((source.size(0), 1), BOS_ID, device=source.device)  # (B, 1)
    finished = torch.zeros(source.size(0), dtype=torch.bool, device=source.device)
    for _ in range(max_new_tokens(source, max_len)):
        hidden, _ = model.decode(tokens, memory, source_mask)  # (B, t, D)
        log_probs = model.output(hidden[:, -1]).float().log_softmax(-1)  # (B, V) 마지막 위치만 필요
        next_token = log_probs.argmax(-1).masked_fill(finished, PAD_ID)  # (B,) 끝난 문장은 <pad>
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t+1)
        finished |= next_token == EOS_ID
        if finished.all():
            break
    return tokens[:, 1:]


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT 길이 보정 lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016). 로그 확률의 합은 단어가 늘수록 작아지므로
    (음수를 더하므로) 나누지 않으면 빔 탐색이 짧은 번역을 좋아합니다. α=0 이면 보정 없음."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model, source: torch.Tensor, beam: int, max_len: int, alpha: float) -> torch.Tensor:
    """빔 탐색: 문장마다 점수가 높은 부분 번역 K 개를 유지하며 넓힙니다. source (B, S) → (B, L).

    점수 = 로그 확률의 합 / lp(길이). 끝난(<eos>) 빔은 <pad> 만 비용 0 으로 붙여 그대로 경쟁합니다.
    K=1 이면 매 걸음 가장 큰 로그 확률 하나를 고르므로 탐욕 해독과 같습니다 (테스트가 확인).
    """
    model.eval()
    B, K = source.size(0), beam
    source_mask = padding_mask(source).repeat_interleave(K, dim=0)  # (B·K, 1, 1, S)
    memory = model.encode(source, padding_mask(source)).repeat_interleave(K, dim=0)  # (B·K, S, D): K 벌
    tokens = torch.full((B * K, 1), BOS_ID, device=source.device)  # (B·K, 1)
    scores = torch.zeros(B, K, device=source.device)
    # 처음엔 K 개 빔이 모두 같은 <bos>: 하나만 살려 같은 후보가 K 번 뽑히지 않게
    scores[:, 1:] = float("-inf")
    lengths = torch.zeros(B * K, device=source.device)  # 빔마다 만든 단어 수 (<eos> 포함)
    finished = torch.zeros(B * K, dtype=torch.bool, device=source.device)
    for _ in range(max_new_tokens(source, max_len)):
        hidden, _ = model.decode(tokens, memory, source_mask)  # (B·K, t, D)
        log_probs = model.output(hidden[:, -1]).float().log_softmax(-1)  # (B·K, V)
        V = log_probs.size(-1)
        log_probs[finished] = float("-inf")  # 끝난 빔: <pad> 만, 비용 0
        log_probs[finished, PAD_ID] = 0.0
        candidates = scores.view(B * K, 1) + log_probs  # (B·K, V) 이어 붙인 후보의 로그 확률 합
        new_lengths = lengths + (~finished).float()  # (B·K,)
        normalized = candidates / length_penalty(new_lengths, alpha)[:, None]  # (B·K, V)
        _, index = normalized.view(B, K * V).topk(K, dim=1)  # (B, K): 문장마다 K·V 후보 중 상위 K
        # (B·K,) 새 빔마다 이어 받은 옛 빔의 행 번호: 문장 b 의 빔 k 는 b·K + k 번째 행
        parent = (torch.arange(B, device=source.device)[:, None] * K + index // V).view(-1)
        scores = candidates.view(B, K * V).gather(1, index)  # (B, K) 보정 전 점수를 들고 다님
        tokens = torch.cat([tokens[parent], (index % V).view(-1, 1)], dim=1)  # (B·K, t+1)
        lengths = new_lengths[parent]
        finished = finished[parent] | (tokens[:, -1] == EOS_ID)
        if finished.all():
            break
    best = (scores.view(-1) / length_penalty(lengths, alpha)).view(B, K).argmax(dim=1)  # (B,)
    return tokens.view(B, K, -1)[torch.arange(B, device=source.device), best, 1:]  # (B, L)


def ids_to_tokens(ids: list[int], itos: list[str]) -> list[str]:
    """번호 → 토큰, 첫 <eos> 에서 멈추고 <pad> 는 버림."""
    tokens = []
    for index in ids:
        if index == EOS_ID:
            break
        if index != PAD_ID:
            tokens.append(itos[index])
    return tokens


def translate_split(model, split: EncodedSplit, target_itos, device, config: Config, beam: int,
                    max_batches: int | None = None) -> tuple[list[int], list[list[str]]]:
    """분할을 번역 (beam=1: 탐욕, 그 외: 빔 탐색). 반환: (번역한 행 번호 오름차순, 행마다 번역 토큰).

    길이가 비슷한 원문끼리 묶으면 배치 안의 패딩과 해독 걸음 수가 줄어 빨라집니다. max_batches 가 있으면
    (--smoke) 그 배치들의 행만 번역합니다. DDP: 프로세스마다 자기 몫(shard_rows)을 번역한 뒤
    all_gather_object 로 모두 모읍니다. 반환한 행 수가 곧 평가한 문장 수입니다 (겹치면 더 많아짐).
    """
    mine = shard_rows(len(split.source))
    order = mine[(split.source[mine] != PAD_ID).sum(dim=1).argsort(stable=True)]  # 원문 길이 순
    outputs: dict[int, list[str]] = {}
    for rows in order.split(config.batch_size)[:max_batches]:
        source, _ = take_batch(split, rows, device)
        if beam == 1:
            ids = greedy_decode(model, source, config.max_len)
        else:
            ids = beam_search(model, source, beam, config.max_len, config.length_penalty)
        for row, sequence in zip(rows.tolist(), ids.tolist()):
            outputs[row] = ids_to_tokens(sequence, target_itos)
    pairs = sorted(outputs.items())  # (행 번호, 번역 토큰), 행 번호 순
    if distributed.is_distributed():  # DDP: 모든 프로세스의 몫을 모아 전체 분할로 (BLEU 는 말뭉치 전체로 셈)
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, pairs)
        pairs = sorted(pair for part in parts for pair in part)
    return [row for row, _ in pairs], [tokens for _, tokens in pairs]


def ngram_counts(tokens: list[str], n: int) -> Counter:
    """토큰 목록의 n-gram 개수. 예: ["a", "b", "a", "b"], n=2 → {("a","b"): 2, ("b","a"): 1}"""
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[str]], max_n: int = 4) -> dict:
    """말뭉치 BLEU-N (Papineni et al., 2002), 참조 번역 하나, 스무딩 없음. 점수는 0~100.

    1) 수정된 n-gram 정밀도 p_n = Σ_문장 Σ_ngram min(번역의 개수, 참조의 개수) / Σ_문장 번역의 n-gram 수
       (clip: "the the the" 가 참조의 "the" 하나로 세 번 맞지 않게).
       문장별이 아니라 말뭉치 전체로 합한 뒤 나눕니다.
    2) 간결성 벌점 BP = 1 (c > r) 또는 exp(1 - r/c) (c ≤ r), c·r = 번역·참조의 전체 토큰 수
       (정밀도만 보면 짧게 자신 있는 단어만 내는 번역이 이기므로).
    3) BLEU = BP · exp(Σ_n log p_n / N)  — 정밀도들의 기하 평균.
    """
    matches, totals = [0] * max_n, [0] * max_n
    hypothesis_length = reference_length = 0
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hypothesis_length += len(hypothesis)
        reference_length += len(reference)
        for n in range(1, max_n + 1):
            reference_counts = ngram_counts(reference, n)
            matches[n - 1] += sum(min(count, reference_counts[gram])
                                  for gram, count in ngram_counts(hypothesis, n).items())
            totals[n - 1] += max(len(hypothesis) - n + 1, 0)
    precisions = [m / t if t else 0.0 for m, t in zip(matches, totals)]
    if hypothesis_length == 0:
        brevity_penalty = 0.0
    else:
        brevity_penalty = 1.0 if hypothesis_length > reference_length else math.exp(
            1 - reference_length / hypothesis_length)
    bleu = 0.0 if min(precisions) == 0 else brevity_penalty * math.exp(sum(map(math.log, precisions)) / max_n)
    return {"bleu": 100 * bleu, "precisions": [100 * p for p in precisions],
            "brevity_penalty": brevity_penalty, "length_ratio": hypothesis_length / max(reference_length, 1)}


def sacrebleu_on_tokens(hypotheses: list[list[str]], references: list[list[str]]) -> float:
    """같은 토큰 위에서의 sacrebleu: 이미 자른 토큰을 공백으로 이어 넘기고 토큰화·스무딩을 끔."""
    return sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]],
                                 tokenize="none", smooth_method="none", force=True).score


def score_translations(hypotheses: list[list[str]], references: list[str]) -> dict:
    """번역(토큰)을 두 정의로 채점합니다. references 는 원문 그대로의 참조 번역 문자열.

    (1) sacreBLEU: detokenize 한 대소문자 그대로의 출력 vs 원문 참조, sacrebleu 기본값(13a 토큰화,
        exp 스무딩). 서명이 정의를 적어 줍니다.
    (2) 소문자 토큰 BLEU: 소문자 토큰 위에서 손 BLEU (bentrevett 튜토리얼의 정의). 같은 토큰에서
        sacrebleu 와 같은지 assert 로 확인합니다.
    """
    metric = sacrebleu.BLEU()
    sacre = metric.corpus_score([detokenize(h) for h in hypotheses], [references])
    lower_hypotheses = [[t.lower() for t in h] for h in hypotheses]
    lower_references = [tokenize(r.lower()) for r in references]
    ours = corpus_bleu(lower_hypotheses, lower_references)
    assert abs(ours["bleu"] - sacrebleu_on_tokens(lower_hypotheses, lower_references)) < 1e-6
    return {"sacrebleu": sacre.score, "signature": str(metric.get_signature()),
            "lowercase_tokens": ours["bleu"],
            "brevity_penalty": ours["brevity_penalty"], "precisions": ours["precisions"]}


def evaluate_test(model, test: EncodedSplit, target_itos, device, config: Config, max_batches) -> dict:
    """best.pt 모델로 시험 분할: 손실, 탐욕·빔 번역과 두 정의의 BLEU. 결과를 출력합니다."""
    result = {"loss": evaluate(model, test, device, config.batch_size, max_batches)["loss"]}
    for name, beam in (("greedy", 1), ("beam", config.beam)):
        rows, hypotheses = translate_split(model, test, target_itos, device, config, beam, max_batches)
        result[name] = score_translations(hypotheses, [test.target_texts[row] for row in rows])
        result[name]["hypotheses"] = hypotheses
        print(f"[시험 BLEU, {name}{'' if beam == 1 else f' K={beam}, α={config.length_penalty}'}] "
              f"sacreBLEU {result[name]['sacrebleu']:.2f} ({result[name]['signature']}) | "
              f"소문자 토큰 BLEU {result[name]['lowercase_tokens']:.2f} "
              f"(BP {result[name]['brevity_penalty']:.3f}, p1..p4 "
              f"{'/'.join(f'{p:.1f}' for p in result[name]['precisions'])})")
    result["rows"] = rows
    return result


# %% 5. 시각화: 위치 인코딩, 마스크, 학습 곡선, 교차 어텐션
# 한글 자모의 로마자 표기 (초성 ㅇ 은 소리가 없어 "-")
INITIALS = "g kk n d tt r m b pp s ss - j jj ch k t p h".split()  # 초성 19개
VOWELS = "a ae ya yae eo e yeo ye o wa wae oe yo u wo we wi yu eu ui i".split()  # 중성 21개
FINALS = ["", *"k k k n n n t l l l l l l l l m p p t t ng t t k t p t".split()]  # 종성 28개 (없음 포함)


def romanize(token: str) -> str:
    """그림 글꼴(DejaVu Sans)에 한글이 없어 그림 속 한글 토큰을 로마자로 적습니다: "학생은" → "haksaengeun".

    한글 음절 = 0xAC00 + (초성·21 + 중성)·28 + 종성 이므로 나눗셈 두 번으로 자모를 얻습니다.
    """
    letters = []
    for character in token:
        code = ord(character) - 0xAC00
        if 0 <= code < 11172:
            initial = INITIALS[code // (21 * 28)]
            letters.append(initial.strip("-") + VOWELS[code // 28 % 21] + FINALS[code % 28])
        else:
            letters.append(character)
    return "".join(letters)


def plot_positional_encoding(d_model: int, path: Path, show: bool = False, length: int = 64) -> Path:
    """위치 × 차원 열지도(heatmap)와 몇 차원의 사인파: 앞 차원은 빨리, 뒤 차원은 천천히 변함."""
    encoding = positional_encoding(length, d_model)  # (L, D)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    image = left.imshow(encoding.T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, origin="lower")
    left.set_xlabel("position (token index)")
    left.set_ylabel("encoding dimension")
    left.set_title(f"Sinusoidal positional encoding (D={d_model})")
    fig.colorbar(image, ax=left, label="value")
    for dimension in (0, 16, 32, 48):  # 파장 2π·10000^(차원/D): D=128 이면 6, 20, 63, 199 토큰
        right.plot(encoding[:, dimension].numpy(), label=f"dim {dimension} (sin)")
    right.set_xlabel("position (token index)")
    right.set_ylabel("value")
    right.set_title("Lower dimensions oscillate faster")
    right.legend(fontsize=8, loc="lower left")
    return viz.save_figure(fig, path, show)


def plot_masks(masks: dict, path: Path, show: bool = False) -> Path:
    """디코더 마스크(패딩 & 인과)를 0/1 격자로: 행 = 질의 위치, 열 = 키 위치, 흰색 = 가림."""
    matrix, tokens = masks["decoder"].numpy(), [romanize(t) for t in masks["tokens"]]
    fig, ax = plt.subplots(figsize=(0.45 * len(tokens) + 2.5, 0.45 * len(tokens) + 1.8))
    ax.imshow(matrix, cmap="Greens", vmin=0, vmax=1.5)
    for row in range(len(tokens)):
        for column in range(len(tokens)):
            ax.text(column, row, str(matrix[row, column]), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key position (may attend to = 1)")
    ax.set_ylabel("query position")
    ax.set_title("Decoder mask = padding & causal")
    return viz.save_figure(fig, path, show)


@torch.no_grad()
def cross_attention(model, source_ids: list[int], output_ids: list[int], device) -> torch.Tensor:
    """번역이 끝난 뒤 한 번 더 디코더를 돌려 마지막 층의 교차 어텐션을 헤드 평균으로: (T_out, S)."""
    model.eval()
    source = torch.tensor([source_ids], device=device)  # (1, S)
    # (1, T_out): 위치 i 의 질의가 번역 단어 i 를 만들 때 원문의 어디를 보았는지 (<bos> + 마지막 단어 빼고)
    target_in = torch.tensor([[BOS_ID] + output_ids[:-1]], device=device)
    source_mask = padding_mask(source)
    _, weights = model.decode(target_in, model.encode(source, source_mask), source_mask, need_weights=True)
    return weights[0].mean(dim=0).cpu()  # (h, T_out, S) → (T_out, S)


def plot_cross_attention(weights: torch.Tensor, source_tokens, output_tokens, path: Path, show=False) -> Path:
    """교차 어텐션 열지도: 행 = 만든 번역 단어, 열 = 원문 토큰. 어순이 바뀌는 곳이 대각선에서 벗어남."""
    fig, ax = plt.subplots(figsize=(0.5 * len(source_tokens) + 3, 0.45 * len(output_tokens) + 2))
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), [romanize(t) for t in source_tokens], rotation=60, ha="right",
                  fontsize=9)
    ax.set_yticks(range(len(output_tokens)), [romanize(t) for t in output_tokens], fontsize=9)
    ax.set_xlabel("source token")
    ax.set_ylabel("generated token (Hangul romanised)")
    ax.set_title("Cross-attention, last decoder layer (head mean)")
    fig.colorbar(image, ax=ax, label="attention weight")
    return viz.save_figure(fig, path, show)


def save_figures(model, history, masks, test, result, source_itos, target_itos, config, out_dir, device):
    """그림 네 장: 학습 곡선, 위치 인코딩, 마스크, 첫 시험 문장의 교차 어텐션."""
    viz.plot_history(history.rows, out_dir / "history.png", show=config.show, title="Transformer training")
    plot_positional_encoding(model.d_model, out_dir / "positional_encoding.png", show=config.show)
    plot_masks(masks, out_dir / "masks.png", show=config.show)
    row, output_tokens = result["rows"][0], result["greedy"]["hypotheses"][0] + [EOS]  # 첫 시험 문장의 번역
    source_ids = [i for i in test.source[row].tolist() if i != PAD_ID]
    stoi = {w: i for i, w in enumerate(target_itos)}
    weights = cross_attention(model, source_ids, [stoi.get(t, UNK_ID) for t in output_tokens], device)
    plot_cross_attention(weights, [source_itos[i] for i in source_ids], output_tokens,
                         out_dir / "cross_attention.png", show=config.show)


# %% 6. 추론: 아무 문장이나 번역
@torch.no_grad()
def translate(model, text: str, source_itos, target_itos, device, config: Config) -> dict:
    """문장 하나 → 탐욕·빔 번역. 비었거나 단어가 모두 어휘에 없으면 UserError (번역할 것이 없음)."""
    tokens = tokenize(text)
    if not tokens:
        raise UserError("--predict 문장이 비어 있습니다. 예: --predict \"ein Mann fährt Fahrrad .\"")
    stoi = {w: i for i, w in enumerate(source_itos)}
    unknown = [t for t in tokens if t not in stoi]
    words = [t for t in tokens if any(c.isalnum() for c in t)]  # 문장부호는 어느 언어에나 있으므로 빼고 셈
    if set(words) <= set(unknown):
        raise UserError(f"--predict 문장의 단어가 모두 원문 어휘에 없습니다({', '.join(unknown[:5])}): "
                        f"이 모델은 '{source_itos[4]}', '{source_itos[5]}' … 같은 "
                        "학습 데이터의 원문 언어를 번역합니다.")
    source = torch.tensor([encode(tokens, stoi, config.max_len)], device=device)  # (1, S)
    greedy = ids_to_tokens(greedy_decode(model, source, config.max_len)[0].tolist(), target_itos)
    beam_ids = beam_search(model, source, config.beam, config.max_len, config.length_penalty)
    beam = ids_to_tokens(beam_ids[0].tolist(), target_itos)
    return {"input": text, "tokens": tokens, "unknown_words": unknown,
            "greedy": detokenize(greedy), "beam": detokenize(beam), "beam_size": config.beam}


def predict(config: Config, device) -> dict:
    """best.pt 를 먼저 읽고(없거나 망가졌으면 한 줄 오류), 문장을 번역해 출력하고
    prediction.json 에 씁니다."""
    out_dir = Path(config.out_dir)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                    purpose="predict")
    extra = checkpoint["extra"]
    result = translate(model, config.predict, extra["source_itos"], extra["target_itos"], device, config)
    result["data"] = extra["data"]
    if result["unknown_words"]:
        print(f"[주의] 어휘에 없는 단어 {len(result['unknown_words'])}개는 <unk> 로 번역합니다: "
              f"{', '.join(result['unknown_words'][:8])}")
    print(f"[번역] {config.predict}\n  탐욕: {result['greedy']}\n  빔 {config.beam}: {result['beam']}")
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    return result


def show_examples(result: dict, test: EncodedSplit, count: int = 4) -> None:
    """시험 문장 몇 개: 원문, 참조, 탐욕, 빔."""
    for index, row in enumerate(result["rows"][:count]):
        print(f"[예] 원문 {test.source_texts[row]}\n     참조 {test.target_texts[row]}\n"
              f"     탐욕 {detokenize(result['greedy']['hypotheses'][index])}\n"
              f"     빔   {detokenize(result['beam']['hypotheses'][index])}")


# %% main: 위 조각들을 순서대로
def main(config: Config) -> dict:
    started, out_dir = time.perf_counter(), Path(config.out_dir)
    if config.predict is not None:
        return predict(config, pick_device(config.device))
    device, world = setup_ddp(config)  # torchrun 이 아니면 (--device 의 장치, 1): 한 프로세스 (3-1절)
    epochs, max_batches = (min(config.epochs, 3), 1) if config.smoke else (config.epochs, None)  # --smoke

    # ---- 1. 데이터 ----
    data, source_itos, target_itos, train, validation, test = prepare_data(config)

    # ---- 2. 모델: 어텐션을 손으로 → PyTorch 와 비교 → 마스크 → 트랜스포머 (DDP 면 감쌈) ----
    check_attention(config.seed)
    masks = show_masks(train, target_itos)
    model_args = model_arguments(config, data.name, source_itos, target_itos)
    model, optimizer, scheduler, scaler = prepare_model(config, model_args, train, max_batches, device)
    ddp_model, sampler = wrap_ddp(model, device), make_sampler(len(train.source), config.seed)

    # ---- 3. 학습 ----
    loader_generator = torch.Generator().manual_seed(config.seed)  # 배치 순서 (체크포인트가 상태를 저장)
    extra = {"data": data.name, "source_itos": source_itos, "target_itos": target_itos,
             "languages": [data.source_language, data.target_language]}
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[loader_generator], history=history)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[loader_generator],
                                                 history=history, best=math.inf)
    trained_tokens, train_seconds = 0, 0.0  # 초당 토큰 수 (이번 실행에서 학습한 epoch 만)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if sampler is not None:  # DDP: set_epoch 를 부르지 않으면 매 epoch 똑같은 순서 (3-1절)
                sampler.set_epoch(epoch)
            batches = make_batches(train, config.batch_size // world, loader_generator, sampler)[:max_batches]
            epoch_started = time.perf_counter()
            train_loss = train_one_epoch(ddp_model, train, batches, optimizer, scheduler, scaler, config,
                                         device, epoch)
            train_seconds += time.perf_counter() - epoch_started
            trained_tokens += sum(int((train.target[rows, 1:] != PAD_ID).sum()) for rows in batches)
            val = evaluate(model, validation, device, config.batch_size, max_batches)
            history.log(epoch=epoch, train_loss=train_loss, **{f"val_{k}": v for k, v in val.items()})
            if val["loss"] < best:  # 검증 손실(작을수록 좋음)이 가장 낮은 epoch 을 best.pt 로
                best = val["loss"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))  # DDP: 파일은 rank 0 만 씀
            distributed.barrier()  # DDP: 다른 프로세스는 rank 0 이 다 쓸 때까지 기다림 (3-1절)
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None

    # ---- 4. 평가: 시험 점수는 언제나 best.pt 로 (--predict 와 같은 가중치). DDP: 몫마다 번역해 모음 ----
    model, result = evaluate_best(config, test, target_itos, device, max_batches)
    (trained_tokens,) = sum_over_processes([trained_tokens], device)  # DDP: 모든 프로세스가 학습한 토큰 수
    if not distributed.end():  # DDP 끝: 그룹을 닫고 rank 0 만 계속 (그림·부록·기록), 나머지는 끝냄
        return result

    # ---- 5. 시각화 / 6. 추론 예 / 부록: √d_k 실험 ----
    save_figures(model, history, masks, test, result, source_itos, target_itos, config, out_dir, device)
    show_examples(result, test)
    scaling = why_scale_by_sqrt_dk(config.seed)
    return summarize(config, data.name, device, model, result, history, scaling, test, model_args,
                     started=started, tokens=trained_tokens, train_seconds=train_seconds, world=world)


def prepare_model(config: Config, model_args: dict, train: EncodedSplit, max_batches: int | None, device):
    """시드 고정 → 모델 → Adam + 워밍업 일정 (+ CUDA 의 GradScaler).

    반환: (model, optimizer, scheduler, scaler).

    시드를 여기서 다시 고정해 초기 가중치가 앞의 검증 코드가 쓴 난수와 무관하게 합니다 (DDP 에서도 모든
    프로세스가 같은 초기 가중치를 만들고, DDP 가 감쌀 때 rank 0 의 것을 다시 보냄). 한 epoch 의 걸음 수는
    전체 배치(--batch-size)로 셉니다: DDP 에서 프로세스마다 B/N 쌍씩 걸어도 같은 값입니다.
    """
    set_seed(config.seed)
    model = build_model(**model_args).to(device)
    # 가중치 공유(출력층 = 번역문 임베딩)는 model.parameters() 가 한 번만 셈
    print(f"장치(device): {device} | 모델 {model_args} | "
          f"파라미터 {sum(p.numel() for p in model.parameters()):,}개")
    steps_per_epoch = len(make_batches(train, config.batch_size, None)[:max_batches])
    return model, *make_optimizer(model, config, steps_per_epoch, device)


def evaluate_best(config: Config, test: EncodedSplit, target_itos, device, max_batches):
    """best.pt 를 다시 읽어 시험 분할을 평가합니다 (DDP 면 모든 프로세스가 자기 몫을). 반환: (모델, 결과)."""
    model, _ = training.load_trained_model(Path(config.out_dir) / "best.pt", build_model, config, device,
                                           purpose="test")
    return model, evaluate_test(model, test, target_itos, device, config, max_batches)


def summarize(config: Config, data_name: str, device, model, result: dict, history: training.History,
              scaling: dict,
              test: EncodedSplit, model_args: dict, *, started: float, tokens: int, train_seconds: float,
              world: int) -> dict:
    """metrics.json 과 test_translations.json 을 쓰고 마지막 줄을 출력합니다. 반환: metrics.

    학습 속도는 실행마다 달라서 metrics 가 아닌 timing 에: 학습한 토큰 수(DDP 면 모든 프로세스의 합) / 시간.
    """
    metrics = collect_metrics(result, history, scaling, model_args)
    write_outputs(Path(config.out_dir), result, test)
    timing = {"tokens_per_second": tokens / train_seconds if train_seconds else None,
              "train_seconds": train_seconds, **({"processes": world} if world > 1 else {})}
    write_run_record(config.out_dir, script=config.chapter + ".py", config=config, data=data_name,
                     device=device, seconds=time.perf_counter() - started,
                     parameters=sum(p.numel() for p in model.parameters()),  # 공유한 가중치는 한 번만 셈
                     metrics=metrics, headline="test_bleu", timing=timing)
    print(f"끝: {time.perf_counter() - started:.0f}초, 결과는 {config.out_dir}")
    return metrics


def collect_metrics(result, history, scaling, model_args) -> dict:
    """metrics.json 의 결정적인 숫자들 (같은 시드·CPU → 같은 값)."""
    val_losses = history.column("val_loss")
    return {
        "test_bleu": result["greedy"]["sacrebleu"],
        "test_bleu_lowercase_tokens": result["greedy"]["lowercase_tokens"],
        "test_bleu_beam": result["beam"]["sacrebleu"],
        "test_bleu_beam_lowercase_tokens": result["beam"]["lowercase_tokens"],
        "test_loss": result["loss"],
        "best_val_loss": min(val_losses),
        "best_epoch": int(history.column("epoch")[val_losses.index(min(val_losses))]),
        "source_vocab_size": model_args["source_vocab_size"],
        "target_vocab_size": model_args["target_vocab_size"],
        "softmax_max_weight_unscaled_vs_scaled": {str(k): list(v) for k, v in scaling.items()},
        "test_examples": len(result["rows"]),  # 번역해 채점한 시험 문장 수 (DDP 에서도 시험 분할 크기)
    }


def write_outputs(out_dir: Path, result: dict, test: EncodedSplit) -> None:
    """시험 번역 전체와 BLEU 의 정의(sacreBLEU 서명)를 test_translations.json 에."""
    record = {"bleu_definitions": {
        "test_bleu": "sacreBLEU, detokenised cased output vs raw references: "
                     + result["greedy"]["signature"],
        "test_bleu_lowercase_tokens": "BLEU-4 on lowercased word tokens of this chapter's tokenizer, "
                                      "no smoothing (bentrevett's definition)"},
        "translations": [{"source": test.source_texts[row], "reference": test.target_texts[row],
                          "greedy": detokenize(greedy), "beam": detokenize(beam)}
                         for row, greedy, beam in zip(result["rows"], result["greedy"]["hypotheses"],
                                                      result["beam"]["hypotheses"])]}
    (out_dir / "test_translations.json").write_text(json.dumps(record, ensure_ascii=False, indent=1),
                                                    encoding="utf-8")


if __name__ == "__main__":
    run(main, Config)
