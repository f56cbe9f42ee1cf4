"""04장. RNN 텍스트 분류: 영화 리뷰 감정 분석 (IMDB), RNN vs LSTM vs GRU vs 단어 주머니.

학습 목표
    - 글을 숫자로: 토큰화(tokenization) → 어휘(vocabulary) → 정수 인코딩 → 패딩(padding) →
      `pack_padded_sequence` 를 직접 만들고, 패킹이 왜 필요한지 숫자로 확인합니다.
    - 원-핫(one-hot) 벡터와 임베딩(embedding)의 차이, `nn.Embedding` 이 하는 일.
    - RNN 점화식 h_t = tanh(W·x_t + U·h_{t-1} + b) 를 반복문으로 직접 짜고 `nn.RNN` 과 비교.
    - 다대일(many-to-one) 분류: 바닐라 RNN, LSTM, GRU, 그리고 순서를 보지 않는 단어 주머니
      (bag-of-words, `nn.EmbeddingBag`) 기준선으로 '어순이 더해 주는 것'을 측정합니다.
    - 기울기 소실(vanishing gradient)을 눈으로: 각 시점 입력에 대한 기울기 크기, RNN vs LSTM.
    - 실제 글을 위한 레시피를 단계마다 재기: 긴 리뷰의 끝(결론)까지 남기기(--truncate), 양방향과
      시간 축 최대 풀링(--bidirectional --pooling max), 조기 종료(--patience), 실제 어휘에 맞는 크기,
      임베딩 드롭아웃(--embed-dropout). 이겼는지는 같은 시험 리뷰로 짝지어(McNemar) 판정합니다.

핵심 개념
    토큰화, 어휘(<pad>, <unk>, 최소 빈도), 패딩과 패킹, 임베딩, 은닉 상태(hidden state),
    게이트(gate), 기울기 소실, 기울기 자르기(gradient clipping), 이진 교차 엔트로피(BCE),
    자르기(truncation: 앞·끝·양끝), 시간 축 풀링(pooling over time, 패딩 제외), 조기 종료(early stopping),
    임베딩 드롭아웃(embedding dropout), 짝지은 비교(paired comparison, McNemar 검정).

실행 방법
    python 04_rnn_text_classification.py                      # 기본: LSTM + 모든 셀 비교
    python 04_rnn_text_classification.py --smoke              # 배치 하나로 몇 초 (테스트용)
    python 04_rnn_text_classification.py --cell gru --bidirectional
    python 04_rnn_text_classification.py --predict "this movie was not good at all"
    python 04_rnn_text_classification.py --data real          # IMDB (약 84 MB 내려받기)
    python 04_rnn_text_classification.py --data real --data-dir D  # 풀어 둔 D/aclImdb/ 를 읽음
    python 04_rnn_text_classification.py --resume             # last.pt 에서 이어서
    실제 짧은 리뷰(rt-polarity 10,662 문장)의 레시피 (단계별 측정: benchmarks/rt_polarity_recipe.md):
    python 04_rnn_text_classification.py --data real --data-dir ../shared/data/rt-polarity \\
        --bidirectional --pooling max --epochs 20 --patience 3 --embed-dim 128 --hidden-size 128 \\
        --dropout 0.5 --embed-dropout 0.5
    GPU: python 04_rnn_text_classification.py --data real --device cuda --batch-size 256 \\
             --epochs 10 --embed-dim 128 --hidden-size 256 --dropout 0.3
    인터넷이 없으면(--data auto) 절차적으로 만든 영화 리뷰로 대신합니다. 리뷰마다 의견 문장이
    하나 있고, 부정("not good"), 대조("good actors but a boring plot"), 멀리 떨어진 의견
    (의견 뒤에 중립 문장이 12~40토큰 이어짐)이 섞여 있어 어순을 봐야 풀립니다.

기대 결과 (아래 블록은 benchmarks/run_all.py 가 씀; 그 밖의 숫자는 조건을 밝힌 따로 잰 값)
    오프라인 기본 실행: 학습 9,000 / 검증 1,000 / 시험 2,500 리뷰, 6 epoch. 시험 점수는 언제나 best.pt
    (검증 정확도가 처음 최고였던 epoch)로 냅니다. 셀 비교의 다른 셀도 각자의 best epoch 로 시험합니다.
    조기 종료(--patience 3)는 seeds 42–44 에서 GRU·RNN 을 최고 epoch 뒤에서만 멈춰 숫자가 그대로입니다.
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · procedural reviews (offline fallback) · cpu · seeds 42, 43, 44
      test_accuracy 1 · bow_test_accuracy 0.5392 (0.5004–0.5512) · wall 48.6 (47.7–48.7) s
      peak 0.96 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    - 계약 개편 뒤 1회(seed 42, 붐비는 기계): 바닐라 RNN 0.748 — 의견이 끝에 있으면 1.00, 멀리(앞에)
      있으면 0.50~0.52 로 우연 수준. 단어 주머니 0.500 — "not good" 을 거꾸로 읽음.
    - 기울기 소실(길이 100): 첫 토큰 / 마지막 토큰 기울기 비율 RNN 2e-20, LSTM 7e-7, GRU 8e-3 (같은 실행).
    - 실제 IMDB(25,000/25,000, 최대 200토큰): 아직 측정하지 않았습니다(미측정). 약 2,000개 리뷰로 잰
      값(앞 200 토큰만 남기던 때)은 LSTM 0.630 < 단어 주머니 0.820 으로, 데이터가 적고 리뷰가 길면
      어순보다 단어가 이깁니다. 그럴 때는 실행이 끝에 [판정] 줄로 진 것과 그 이유, 그리고 아직 쓰지 않은
      레시피 플래그를 말합니다.
    - rt-polarity(학습 7,677 / 검증 853 / 시험 2,132, seed 로 나눈 분할, 평균 22·최대 61 토큰이라 자르는
      리뷰 0%), seeds 42, 43, 44 중앙값 (최소–최대), 붐비는 2코어 CPU·1 스레드:
      기본 설정 LSTM 0.7345 (0.7251–0.7458) vs 단어 주머니 0.7538 (0.7500–0.7598), 실행당 41–46 s.
      위 레시피 LSTM 0.7711 (0.7575–0.7749) vs 단어 주머니 0.7566 (0.7528–0.7575): 세 시드 모두 LSTM 이
      앞섬 (+0.47, +1.74, +1.45점). 같은 시험 리뷰로 짝지은 McNemar z 는 +0.53, +2.26, +1.82 라 한 번의
      실행으로 '이겼다'고 할 만한 것은 seed 43 하나, 나머지는 비김. GRU 0.7631, RNN 0.7603. 실행당
      320–456 s (두 실행을 함께). 임베딩 드롭아웃이 없던 레시피(--embed-dropout 0)는 LSTM 0.7472 로
      단어 주머니보다 0.9점 아래였습니다. 단계별 표와 0.5 를 검증으로 고른 과정:
      benchmarks/rt_polarity_recipe.md.
    --predict 는 같은 --out-dir (기본 outputs/04_rnn_text_classification/)의 best.pt 하나만 씁니다
    (모델 설정과 어휘가 그 안에 있어 --cell 등을 다시 줄 필요가 없음). 결과는 prediction.json 에도.
    예: "the acting was bad but the plot was great" → 0.985, 두 절의 순서를 바꾸면 0.005,
    "this movie was not good at all" → 0.14 ('this', 'movie' 는 모르는 단어). 어휘에 없는 단어가
    많거나 영어가 아니면(예: 한국어 문장) 어느 단어를 모르는지와 영어 리뷰로 학습되었다는 것을 알립니다.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림은 이 장의 주제가 아니라 모듈 하나로: viz.save_figure(...)
from utils.data.text import load_imdb
from utils.runtime import RunConfig, UserError, pick_device, run, write_run_record
from utils.synthetic import make_reviews

# 모양(shape) 글자: B=배치, T=시간(토큰 위치), E=임베딩 차원, H=은닉 크기, D=방향 수(1 또는 2), V=어휘 크기

PAD, UNK = "<pad>", "<unk>"  # 어휘의 0번(패딩), 1번(모르는 단어)
PAD_ID, UNK_ID = 0, 1
CELLS = ("bow", "rnn", "lstm", "gru")  # 비교표의 순서: 순서를 안 보는 기준선 → 점점 강한 순환 셀
EVAL_BATCH_SIZE = 512  # 평가는 기울기를 저장하지 않아 학습 배치보다 크게: 시험 2,500 리뷰를 5번에
Z_95 = 1.96  # 판정문: 짝지은 비교의 z 가 이보다 크면 '잡음으로 보기 어려운 차이' (양쪽 5%, 정규 근사)
SMALL_TRAIN_SET = 10_000  # 판정문: 학습 리뷰가 이보다 적으면 "데이터가 적다"를 이유로 (IMDB 전체는 22,500)
UNKNOWN_WARNING = 0.5  # --predict: 모르는 단어가 이 비율을 넘으면 '학습 데이터와 다른 글'이라고 경고
# 판정문이 권하는 실제 글용 레시피 (rt-polarity 에서 잰 값: benchmarks/rt_polarity_recipe.md)
RECIPE_EPOCHS = 20  # 조기 종료(--patience)가 멈추므로 넉넉히: rt-polarity 레시피는 4~10 epoch 에서 멈춤
RECIPE_PATIENCE = 3  # Config.patience 의 기본값과 같음
RECIPE_SIZE = 128  # 임베딩·은닉 크기: 어휘가 수천 단어인 실제 글 (오프라인 리뷰의 어휘는 약 150)
RECIPE_DROPOUT = 0.5  # 분류층 앞 드롭아웃: 작은 문장 분류 데이터의 표준 값 (Kim, 2014)
RECIPE_EMBED_DROPOUT = 0.5  # 임베딩 드롭아웃: rt-polarity 검증에서 0.3 보다 나았음 (세 시드 모두)


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "04_rnn_text_classification"  # 출력 폴더 outputs/<chapter>/, 체크포인트 주인
    epochs: int = 6  # 절차적 리뷰에서 LSTM 은 3~4 epoch 에 검증 정확도 1.0, 여유 2
    batch_size: int = 128  # CPU 에서 시점(T)마다 도는 반복 횟수를 줄이려고 크게
    lr: float = 5e-3  # Adam. 작은 순환망은 기본값 1e-3 보다 크게 해도 안정적 (기울기 자르기 덕분)
    bow_lr: float = 2e-2  # 단어 주머니 기준선: 평균이 신호를 1/T 로 묽게 하므로 더 크게 (공정한 비교)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # 체크포인트로 저장하는 기본 모델의 순환 셀
    bidirectional: bool = False  # 양방향(bidirectional): 앞→뒤, 뒤→앞 두 방향의 상태를 이어 붙임
    # 풀링(pooling): 분류층이 무엇을 보는가. last = 마지막 은닉 상태(방향마다 하나), max·mean = 모든 시점
    # 출력의 최댓값·평균 (패딩 자리는 빼고). 양방향 LSTM + 최대 풀링은 문장 표현으로 자주 쓰이는 조합
    # (Conneau et al., 2017, InferSent). 기본 last: 마지막 상태만으로 푸는 것이 이 장의 다대일 수업
    pooling: Literal["last", "max", "mean"] = "last"
    embed_dim: int = 32  # 임베딩 차원 E: 어휘 약 150개인 절차적 리뷰에 충분 (IMDB 는 100~300)
    hidden_size: int = 64  # 은닉 상태 크기 H
    dropout: float = 0.2  # 분류층 앞 드롭아웃 비율 (IMDB 처럼 과적합이 쉬운 데이터용)
    # 임베딩 드롭아웃(embedding dropout): 학습 중 순환 셀에 들어가는 단어 벡터의 성분을 이 비율만큼 0 으로.
    # 어휘가 수천 단어인데 리뷰가 몇천 개뿐이면 드문 단어의 벡터가 외워지기 쉬움 (Gal & Ghahramani, 2016;
    # Merity et al., 2018). 순환 모델(rnn·lstm·gru)에만: 단어 주머니에는 검증에서 도움이 되지 않았음
    # (benchmarks/rt_polarity_recipe.md). 기본 0 = 끔 (오프라인 절차적 리뷰의 어휘는 약 150 단어)
    embed_dropout: float = 0.0
    grad_clip: float = 1.0  # 기울기 노름(norm) 상한: RNN 의 기울기 폭주(exploding gradient) 방지
    max_len: int = 200  # 리뷰당 쓰는 최대 토큰 수 (IMDB 평균 약 230 단어). 어느 부분을 남길지는 --truncate
    # max_len 보다 긴 리뷰에서 남길 부분: head = 앞, tail = 끝, both = 앞 절반 + 끝 절반. 기본 both:
    # 리뷰는 끝에 결론("…, 8/10", "skip it")을 쓰는 일이 많고, IMDB 에서 앞+끝을 남긴 것이 앞만·끝만
    # 남긴 것보다 나았습니다 (Sun et al., 2019, "How to Fine-Tune BERT for Text Classification").
    # 오프라인 절차적 리뷰는 가장 긴 것이 65 토큰이라 잘리는 리뷰가 없어 기본값과 무관하게 같은 숫자
    truncate: Literal["head", "tail", "both"] = "both"
    min_freq: int = 2  # 학습 분할에서 이보다 적게 나온 단어는 <unk> (오타·희귀어 정리)
    max_vocab: int = 20_000  # 어휘 상한(<pad>, <unk> 포함): 임베딩 행렬 V x E 의 크기를 제한
    val_fraction: float = 0.1  # 학습 분할에서 떼는 검증 비율: best.pt 를 고름 (시험 분할은 평가에만)
    # 조기 종료(early stopping): 검증 정확도가 이만큼 epoch 동안 최고 기록을 넘지 못하면 그 모델의 학습을
    # 멈춤 (기본 실행과 셀 비교 모두). 시험 점수는 언제나 best.pt 라 멈춘 뒤의 epoch 은 시간만 씁니다
    patience: int = 3
    long_seq_len: int = 100  # 기울기 소실 그림에 쓰는 긴 시퀀스 길이 (학습 리뷰보다 김)
    predict: str = None  # 리뷰 문장을 주면 학습하지 않고 best.pt 로 긍정 확률만 출력 (None=학습)

    def __post_init__(self):
        for name in ("embed_dim", "hidden_size", "long_seq_len", "min_freq", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction 은 0 과 1 사이여야 합니다 (받은 값: {self.val_fraction}).")
        for name in ("dropout", "embed_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} 은 0 이상 1 미만이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.max_len < 2:
            raise ValueError(f"--max-len 은 2 이상이어야 합니다 (받은 값: {self.max_len}).")
        if self.max_vocab < 3:
            raise ValueError("--max-vocab 은 <pad>, <unk> 와 단어 하나를 담도록 3 이상이어야 합니다 "
                             f"(받은 값: {self.max_vocab}).")
        if self.grad_clip <= 0 or self.bow_lr <= 0:
            raise ValueError(f"--grad-clip 과 --bow-lr 은 0 보다 커야 합니다 "
                             f"(받은 값: {self.grad_clip}, {self.bow_lr}).")


# %% 1. 데이터: 글 → 토큰 → 어휘 → 정수 → 패딩
# 신경망은 숫자만 먹습니다. 글을 숫자로 바꾸는 세 단계:
#   1) 토큰화: 문장을 단위(토큰)로 자름   "Not good!" → ["not", "good", "!"]
#   2) 어휘: 학습 분할의 토큰마다 번호     {"<pad>": 0, "<unk>": 1, "the": 2, ...}
#   3) 인코딩: 토큰 → 번호, 길이를 맞추려고 뒤에 <pad>(0) 을 채움(패딩)
# 단어(글자·숫자가 이어진 것, don't 포함) 또는 문장부호 한 글자. [^\W_] = 밑줄을 뺀 유니코드 글자·숫자:
# 한국어 등 다른 문자의 단어도 글자 하나씩이 아니라 단어째 잘립니다 (--predict 가 모르는 단어를 말하도록).
TOKEN_PATTERN = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """소문자로 바꾸고, IMDB 의 HTML 줄바꿈 `<br />` 을 지우고, 단어와 문장부호로 자릅니다.

    >>> tokenize("Not GOOD!<br /><br />I didn't like it.")
    ['not', 'good', '!', 'i', "didn't", 'like', 'it', '.']
    """
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    return TOKEN_PATTERN.findall(text)


def build_vocab(token_lists: list[list[str]], min_freq: int, max_size: int) -> list[str]:
    """학습 분할의 토큰만으로 어휘를 만듭니다: 번호 → 토큰 목록(itos, index-to-string).

    시험 분할을 보면 '모르는 단어'가 어떻게 처리되는지 평가할 수 없게 되므로(데이터 누수,
    data leakage) 학습 분할만 씁니다. 빈도 내림차순, 같은 빈도는 알파벳순(실행마다 같은 번호).
    """
    counts = Counter(token for tokens in token_lists for token in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, UNK] + words[: max_size - 2]


def truncate_tokens(tokens: list[str], max_len: int, keep: str = "head") -> list[str]:
    """max_len 보다 긴 리뷰를 자릅니다. keep: "head"(앞 max_len 개), "tail"(끝 max_len 개),
    "both"(앞 ⌈max_len/2⌉ 개 + 끝 ⌊max_len/2⌋ 개: 첫인상과 결론을 함께, 가운데를 버림).

    >>> truncate_tokens(list("abcdefg"), 5, "both")
    ['a', 'b', 'c', 'f', 'g']
    """
    if len(tokens) <= max_len:
        return tokens
    if keep == "head":
        return tokens[:max_len]
    if keep == "tail":
        return tokens[len(tokens) - max_len:]
    head = (max_len + 1) // 2  # 홀수면 앞에 하나 더
    return tokens[:head] + tokens[len(tokens) - (max_len - head):]


def encode(tokens: list[str], stoi: dict[str, int], max_len: int, truncate: str = "head") -> list[int]:
    """토큰 → 번호. 어휘에 없으면 <unk>. max_len 보다 길면 truncate("head"/"tail"/"both")대로 자름."""
    kept = truncate_tokens(tokens, max_len, truncate)
    return [stoi.get(token, UNK_ID) for token in kept] or [UNK_ID]  # 빈 리뷰도 길이 1


def pad_sequences(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """길이가 다른 번호 목록들 → (N, T_max) 정수 텐서(뒤를 <pad>=0 으로 채움)와 길이 (N,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    tokens = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
    return tokens, lengths


@dataclass
class EncodedSplit:
    """한 분할 전체를 텐서로: tokens (N, T_max), lengths (N,), labels (N,) float 0/1."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    texts: list[str]
    kinds: list[str] | None = None  # 절차적 리뷰의 "구조/위치" (IMDB 는 None)


def encode_split(texts: list[str], labels: list[int], stoi: dict[str, int], max_len: int,
                 kinds: list[str] | None = None, truncate: str = "head") -> EncodedSplit:
    tokens, lengths = pad_sequences([encode(tokenize(t), stoi, max_len, truncate) for t in texts])
    return EncodedSplit(tokens, lengths, torch.tensor(labels, dtype=torch.float32), texts, kinds)


def batch_slices(n: int, batch_size: int, shuffle: bool) -> list[torch.Tensor]:
    """배치마다의 행 번호. 섞을 때 전역 torch 난수(randperm)를 써서 --resume 이 그대로 이어집니다."""
    order = torch.randperm(n) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def take_batch(split: EncodedSplit, rows: torch.Tensor, device: torch.device):
    """배치를 잘라 이 배치에서 가장 긴 길이까지만 남깁니다: tokens (B, T), lengths (B,), labels (B,)."""
    lengths = split.lengths[rows]
    tokens = split.tokens[rows, : int(lengths.max())]  # (B, T) 전체 T_max 가 아니라 배치 최대 길이
    return tokens.to(device), lengths, split.labels[rows].to(device)



@dataclass
class TextData:
    """학습/검증/시험 분할, 어휘(번호 → 단어), 출처 이름, 그리고 판정문이 쓰는 몇 가지 사실."""

    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    itos: list[str]
    name: str
    truncated_fraction: float  # 학습 리뷰 중 max_len 보다 길어 잘린 비율 (--truncate 가 남길 부분을 정함)


def prepare_data(config: Config) -> TextData:
    """원문 → 검증 분할 떼기 → 학습 분할만으로 어휘 → 세 분할을 텐서로.

    검증(validation) 분할은 학습 리뷰의 일부로 best.pt 를 고릅니다. 시험 분할로 고르면 시험 점수가
    낙관적으로 치우칩니다(시험 데이터에 맞춘 선택). 섞는 순서는 자기 torch.Generator 로 정해
    전역 난수를 건드리지 않습니다: 이어하기와 상관없이 언제나 같은 분할.
    """
    raw = load_imdb(config.data, config.data_dir, config.smoke, config.seed)
    order = torch.randperm(len(raw.train_texts), generator=torch.Generator().manual_seed(config.seed))
    n_val = max(1, int(len(order) * config.val_fraction))
    train_rows, val_rows = order[n_val:].tolist(), order[:n_val].tolist()
    train_tokens = [tokenize(raw.train_texts[i]) for i in train_rows]
    itos = build_vocab(train_tokens, config.min_freq, config.max_vocab)
    stoi = {word: index for index, word in enumerate(itos)}
    train = encode_split([raw.train_texts[i] for i in train_rows], [raw.train_labels[i] for i in train_rows],
                         stoi, config.max_len, truncate=config.truncate)
    val = encode_split([raw.train_texts[i] for i in val_rows], [raw.train_labels[i] for i in val_rows],
                       stoi, config.max_len, truncate=config.truncate)
    test = encode_split(raw.test_texts, raw.test_labels, stoi, config.max_len, raw.test_kinds,
                        truncate=config.truncate)
    truncated = sum(len(tokens) > config.max_len for tokens in train_tokens) / len(train_tokens)
    unk_rate = (test.tokens == UNK_ID).sum().item() / test.lengths.sum().item()
    print(f"[데이터] {raw.name}: 학습 {len(train.labels):,} / 검증 {len(val.labels):,} / "
          f"시험 {len(test.labels):,} 리뷰, 어휘 {len(itos):,}개 (학습 분할만, 최소 빈도 {config.min_freq}), "
          f"시험의 <unk> 비율 {unk_rate:.1%}, 길이 평균 {train.lengths.float().mean():.0f} / "
          f"최대 {int(train.lengths.max())} 토큰 ({config.max_len} 토큰을 넘어 --truncate {config.truncate} "
          f"로 자른 리뷰 {truncated:.1%})")
    example = train.texts[0][:80]
    print(f"  예: {example!r}\n   → {tokenize(example)[:12]}\n   → {encode(tokenize(example), stoi, 12)}")
    return TextData(train, val, test, itos, raw.name, truncated)


# %% 1-1. 원-핫 vs 임베딩
def one_hot_vs_embedding(itos: list[str], embedding: nn.Embedding, word_a: str, word_b: str) -> None:
    """원-핫 벡터는 모든 단어 쌍이 직교(코사인 유사도 0)라 '비슷한 뜻'을 담을 수 없습니다.

    예: '은행'과 '금융'도 원-핫으로는 '은행'과 '고양이'만큼 멀리 있습니다. 임베딩은 단어마다
    학습되는 E 차원 벡터라 뜻이 비슷한 단어가 가까워질 수 있습니다. `nn.Embedding` 은
    '원-핫 벡터 x 가중치 행렬'과 같은 계산을, 곱셈 없이 행을 꺼내는 것으로 합니다.
    """
    stoi = {w: i for i, w in enumerate(itos)}
    ids = torch.tensor([stoi.get(word_a, UNK_ID), stoi.get(word_b, UNK_ID)])
    one_hot = F.one_hot(ids, num_classes=len(itos)).float()  # (2, V)
    cosine_one_hot = F.cosine_similarity(one_hot[0], one_hot[1], dim=0).item()
    with torch.no_grad():
        by_matmul = one_hot @ embedding.weight.cpu()  # (2, V) @ (V, E) → (2, E)
        by_lookup = embedding(ids.to(embedding.weight.device)).cpu()  # (2, E) 행 꺼내기
        assert torch.allclose(by_matmul, by_lookup), "임베딩 조회 ≠ 원-핫 x 가중치"
        cosine_embedding = F.cosine_similarity(by_lookup[0], by_lookup[1], dim=0).item()
    print(f"[원-핫 vs 임베딩] '{word_a}'·'{word_b}' 코사인 유사도: 원-핫 {cosine_one_hot:.2f}, "
          f"임베딩 {cosine_embedding:+.2f} | 원-핫 {len(itos)}차원 vs 임베딩 {embedding.embedding_dim}차원, "
          "조회 = 원-핫 x 가중치 (assert 통과)")


# %% 2. 모델
# 2-1. RNN 점화식을 손으로: h_t = tanh(W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh)
# 같은 가중치(W_ih, W_hh)를 모든 시점에 다시 씁니다(가중치 공유). 그래서 길이와 상관없이
# 파라미터 수가 같고, 역전파는 시간을 거슬러(BPTT, backpropagation through time) 흐릅니다.
def rnn_forward_by_hand(x: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                        bias_ih: torch.Tensor, bias_hh: torch.Tensor,
                        h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """한 층·한 방향 tanh RNN. x: (B, T, E), weight_ih: (H, E), weight_hh: (H, H).

    반환: 모든 시점의 은닉 상태 (B, T, H) 와 마지막 상태 (B, H). `nn.RNN(batch_first=True)` 와 같음.
    """
    batch, steps, _ = x.shape
    h = x.new_zeros(batch, weight_hh.shape[0]) if h0 is None else h0  # (B, H)
    outputs = []
    for t in range(steps):
        h = torch.tanh(x[:, t] @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)  # (B, H)
        outputs.append(h)
    return torch.stack(outputs, dim=1), h  # (B, T, H), (B, H)


def check_rnn_by_hand(embed_dim: int = 5, hidden_size: int = 7) -> float:
    """손으로 짠 반복문과 nn.RNN 을 같은 가중치로 돌려 비교합니다. 최대 차이를 돌려줌."""
    generator = torch.Generator().manual_seed(0)  # 전역 난수를 건드리지 않음 (재현성)
    library = nn.RNN(embed_dim, hidden_size, batch_first=True)
    x = torch.randn(3, 6, embed_dim, generator=generator)  # (B=3, T=6, E)
    with torch.no_grad():
        expected_all, expected_last = library(x)  # (B, T, H), (1, B, H)
        ours_all, ours_last = rnn_forward_by_hand(x, library.weight_ih_l0, library.weight_hh_l0,
                                                  library.bias_ih_l0, library.bias_hh_l0)
    assert torch.allclose(ours_all, expected_all, atol=1e-6), "손 RNN ≠ nn.RNN (모든 시점)"
    assert torch.allclose(ours_last, expected_last[0], atol=1e-6), "손 RNN ≠ nn.RNN (마지막 상태)"
    return (ours_all - expected_all).abs().max().item()


# 2-2. 시간 축 풀링(pooling over time): 모든 시점의 출력을 벡터 하나로. 패딩 자리는 빼야 합니다.
# 최댓값: 패딩 자리에 -inf 를 넣으면 절대 뽑히지 않음. 평균: 패딩 자리를 0 으로 두고 진짜 길이로 나눔.
def pool_over_time(outputs: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """outputs (B, T, F) 와 각 리뷰의 길이 (B,) → (B, F). pooling: "max" 또는 "mean".

    t >= 길이인 자리(패딩)는 결과에 들어가지 않습니다: 패딩이 최댓값으로 뽑히거나 평균을 묽게 하면
    같은 리뷰라도 배치 안의 가장 긴 리뷰에 따라 결과가 달라집니다.
    """
    lengths = lengths.to(outputs.device)
    steps = torch.arange(outputs.shape[1], device=outputs.device)  # (T,)
    real = (steps[None, :] < lengths[:, None]).unsqueeze(2)  # (B, T, 1): 진짜 토큰이면 True
    if pooling == "max":
        return outputs.masked_fill(~real, float("-inf")).amax(dim=1)  # (B, F)
    return outputs.masked_fill(~real, 0.0).sum(dim=1) / lengths[:, None]  # (B, F) 합 / 진짜 길이


# 2-3. 다대일(many-to-one) 분류기: 임베딩 → 순환 셀 → 마지막 은닉 상태(또는 풀링) → 로짓 하나
class RNNClassifier(nn.Module):
    """리뷰 (B, T) → 긍정 로짓(logit) (B,). 확률은 sigmoid(로짓).

    cell: "rnn"(tanh), "lstm"(입력·망각·출력 게이트 + 셀 상태), "gru"(갱신·리셋 게이트).
    LSTM·GRU 의 게이트는 '얼마나 기억을 그대로 넘길지'를 배워, 긴 거리에서도 기울기가 덜
    줄어듭니다(셀 상태의 덧셈 경로). 바닐라 RNN 은 매 시점 tanh·행렬 곱을 거쳐 기울기가
    지수적으로 줄어듭니다.
    pooling: "last"(마지막 은닉 상태), "max"·"mean"(모든 시점 출력의 최댓값·평균, pool_over_time).
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, cell: str,
                 bidirectional: bool, dropout: float, pooling: str = "last", embed_dropout: float = 0.0):
        super().__init__()
        self.cell, self.pooling = cell, pooling
        # padding_idx: <pad> 의 벡터는 0 으로 고정되고 기울기를 받지 않음
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.embed_dropout = nn.Dropout(embed_dropout)  # model.eval() 에서는 아무 일도 하지 않음
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_class(embed_dim, hidden_size, batch_first=True, bidirectional=bidirectional)
        directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * directions, 1)
        if cell == "lstm":  # 망각 게이트 편향을 1로: 처음부터 '기억 유지' 쪽 (Jozefowicz et al., 2015)
            for name, bias in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        bias[hidden_size: 2 * hidden_size].fill_(1.0)  # 순서: 입력, 망각, 셀, 출력

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embed_dropout(self.embedding(tokens))  # (B, T) → (B, T, E)
        return self.classify(embedded, lengths)  # (B, T, E) → (B,)

    def classify(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """임베딩된 입력 (B, T, E) → 로짓 (B,). 기울기 소실 실험이 임베딩에 대한 기울기를 보려고 분리."""
        # 패킹: 각 리뷰를 '자기 길이까지만' 돌립니다. 패딩 토큰을 지나며 은닉 상태가 바뀌지
        # 않고, 마지막 은닉 상태 h_n 이 진짜 마지막 토큰의 상태가 됩니다. 길이는 CPU 텐서여야 함.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, h_n = self.rnn(packed)  # outputs: 모든 시점(패킹된 채), h_n: (D, B, H); LSTM 은 (h_n, c_n)
        if self.pooling == "last":
            if self.cell == "lstm":
                h_n = h_n[0]
            features = torch.cat(list(h_n), dim=1)  # (B, D*H): 양방향이면 앞→뒤와 뒤→앞의 마지막 상태
        else:
            # 패킹을 풀어 (B, T, D*H): 시점마다 앞→뒤 상태와 (양방향이면) 뒤→앞 상태를 이어 붙인 것
            padded, _ = pad_packed_sequence(outputs, batch_first=True)
            features = pool_over_time(padded, lengths, self.pooling)  # (B, D*H)
        return self.head(self.dropout(features)).squeeze(1)  # (B, 1) → (B,)


# 2-4. 기준선: 단어 주머니(bag-of-words). 순서를 버리고 임베딩 평균만 봅니다 (fastText 형태).
class BagOfWords(nn.Module):
    """리뷰 (B, T) → 로짓 (B,). 단어 순서를 섞어도 결과가 같습니다: "not good" = "good not"."""

    def __init__(self, vocab_size: int, embed_dim: int):
        super().__init__()
        # EmbeddingBag(mode="mean"): 임베딩 조회 + 평균을 한 번에, padding_idx 는 평균에서 빠짐
        self.bag = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=PAD_ID)
        self.head = nn.Linear(embed_dim, 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(tokens)).squeeze(1)  # (B, T) → (B, E) → (B,)


def build_model(vocab_size: int, embed_dim: int, hidden_size: int, cell: str, bidirectional: bool = False,
                dropout: float = 0.0, pooling: str = "last", embed_dropout: float = 0.0) -> nn.Module:
    """모델 만들기: 체크포인트의 model_args 만으로 --resume·--predict 가 같은 모델을 다시 만듭니다.

    cell="bow" 는 단어 주머니 기준선 (embed_dim 만 씀: 나머지는 순환 모델의 설정).
    """
    if cell == "bow":
        return BagOfWords(vocab_size, embed_dim)
    return RNNClassifier(vocab_size, embed_dim, hidden_size, cell, bidirectional, dropout, pooling,
                         embed_dropout)


def classifier_args(config: Config, vocab_size: int) -> dict:
    """설정 → model_args: build_model(**model_args) 로 모델을 다시 만드는 데 필요한 것 전부.

    어휘 크기는 데이터(학습 분할)에서 정해지므로 설정과 함께 받습니다. 체크포인트에 그대로 저장됩니다.
    """
    return {"vocab_size": vocab_size, "embed_dim": config.embed_dim, "hidden_size": config.hidden_size,
            "cell": config.cell, "bidirectional": config.bidirectional, "dropout": config.dropout,
            "pooling": config.pooling, "embed_dropout": config.embed_dropout}


def check_packing(model: RNNClassifier, split: EncodedSplit, count: int = 4) -> float:
    """패킹한 배치의 결과 = 리뷰를 하나씩 (패딩 없이) 돌린 결과. 패딩만 하고 패킹하지 않으면 다름.

    반환: 패킹 없이 패딩째 돌렸을 때 가장 짧은 리뷰의 로짓이 달라진 정도.
    """
    model.eval()  # 드롭아웃을 꺼야 같은 입력 → 같은 출력
    device = next(model.parameters()).device
    rows = split.lengths.argsort()[torch.linspace(0, len(split.lengths) - 1, count).long()]
    tokens, lengths, _ = take_batch(split, rows, device)  # 길이가 서로 다른 리뷰 count 개
    with torch.no_grad():
        packed_logits = model(tokens, lengths)  # (count,)
        alone = torch.cat([model(tokens[i: i + 1, : lengths[i]], lengths[i: i + 1]) for i in range(count)])
        full = torch.full_like(lengths, tokens.shape[1])  # '모두 최대 길이'라고 속이면 = 패킹 안 함
        padded_logits = model(tokens, full)
    assert torch.allclose(packed_logits, alone, atol=1e-5), "패킹한 배치 ≠ 하나씩 돌린 결과"
    return (padded_logits - alone).abs()[0].item()


# %% 3. 학습
def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, split: EncodedSplit, batch_size: int,
                    grad_clip: float, epoch: int, device: torch.device, max_batches: int | None = None,
                    desc: str | None = None) -> float:
    """한 epoch 학습, 평균 손실을 돌려줍니다. 섞는 순서는 전역 torch 난수: --resume 이 상태를 되돌림."""
    model.train()  # 드롭아웃 켜기
    batches = batch_slices(len(split.labels), batch_size, shuffle=True)[:max_batches]
    total_loss, seen = torch.zeros((), device=device), 0
    for step, rows in enumerate(training.progress(batches, desc=desc or f"epoch {epoch}"), start=1):
        tokens, lengths, labels = take_batch(split, rows, device)
        optimizer.zero_grad()  # PyTorch 는 기울기를 더해 쌓으므로 배치마다 비움
        logits = model(tokens, lengths)  # (B,)
        # BCEWithLogits = sigmoid + 이진 교차 엔트로피를 수치적으로 안정하게 한 번에
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        training.check_finite(loss, epoch, step)
        loss.backward()  # 시간을 거슬러 역전파(BPTT)
        # 기울기 자르기: 전체 기울기 노름이 grad_clip 을 넘으면 같은 방향으로 줄임 (폭주 방지)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total_loss += loss.detach() * len(rows)
        seen += len(rows)
    return total_loss.item() / seen


def early_stop(history: training.History, patience: int, best: float, epoch: int, name: str) -> bool:
    """조기 종료(early stopping): 검증 정확도가 patience epoch 동안 최고 기록을 넘지 못했으면 알리고 True.

    기록(history)만으로 판단하므로 --resume 으로 이어 한 뒤에도 끊지 않은 학습과 같은 곳에서 멈춥니다.
    최고 epoch 뒤에서만 멈추므로 best.pt(와 시험 점수)는 그대로이고, 멈춘 뒤의 epoch 시간만 아낍니다.
    """
    if history.epochs_since_best("val_accuracy", "max") < patience:
        return False
    print(f"  조기 종료: {name} 의 검증 정확도가 {patience} epoch 동안 최고 {best:.4f} 를 넘지 못해 "
          f"epoch {epoch - 1} 에서 멈춥니다 (--patience).")
    return True


# %% 4. 평가
@torch.no_grad()  # 평가에는 기울기가 필요 없음: 메모리·시간 절약
def predict_probabilities(model: nn.Module, split: EncodedSplit, device: torch.device,
                          max_batches: int | None = None) -> torch.Tensor:
    """분할 전체의 긍정 확률 (N,). model.eval(): 드롭아웃을 꺼서 같은 입력 → 같은 출력."""
    model.eval()
    probabilities = []
    for rows in batch_slices(len(split.labels), EVAL_BATCH_SIZE, shuffle=False)[:max_batches]:
        tokens, lengths, _ = take_batch(split, rows, device)
        probabilities.append(torch.sigmoid(model(tokens, lengths)).cpu())
    return torch.cat(probabilities)


def evaluate(model: nn.Module, split: EncodedSplit, device: torch.device,
             max_batches: int | None = None) -> dict:
    """{"loss", "accuracy", "by_kind"(절차적 리뷰의 구조/위치별 정확도), "probabilities" (N,)}."""
    probabilities = predict_probabilities(model, split, device, max_batches)
    labels = split.labels[: len(probabilities)]
    correct = (probabilities > 0.5).float() == labels
    loss = F.binary_cross_entropy(probabilities.clamp(1e-7, 1 - 1e-7), labels).item()
    result = {"loss": loss, "accuracy": correct.float().mean().item(), "probabilities": probabilities}
    if split.kinds is not None:  # 어떤 종류의 리뷰에서 틀리는가
        kinds = split.kinds[: len(probabilities)]
        result["by_kind"] = {kind: correct[[k == kind for k in kinds]].float().mean().item()
                             for kind in sorted(set(kinds))}
    return result


def confusion(probabilities: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """혼동 행렬 2x2: 행 = 정답(부정, 긍정), 열 = 예측."""
    predicted = (probabilities > 0.5).long()
    truth = labels[: len(predicted)].long()
    return [[int(((truth == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]


def show_confident_examples(probabilities: torch.Tensor, split: EncodedSplit, count: int = 3) -> None:
    """가장 확신한 정답과 가장 확신한 오답 리뷰. 오답에서 모델의 약점이 보입니다."""
    labels = split.labels[: len(probabilities)]
    confidence = (probabilities - 0.5).abs() * 2  # 0(반반) ~ 1(확신)
    correct = (probabilities > 0.5).float() == labels
    for title, mask in (("가장 확신한 정답", correct), ("가장 확신한 오답", ~correct)):
        rows = torch.nonzero(mask).flatten()
        rows = rows[confidence[rows].argsort(descending=True)][:count]
        print(f"[{title}] {len(torch.nonzero(mask))}개 중 {len(rows)}개")
        for row in rows.tolist():
            text = split.texts[row].replace("<br />", " ")
            text = text if len(text) <= 160 else text[:157] + "..."
            print(f"  정답 {int(labels[row])} 긍정확률 {probabilities[row]:.3f} | {text}")


def summarize_metrics(test: dict, best_val_accuracy: float, cells: pd.DataFrame, ratios: dict,
                      vocab_size: int) -> dict:
    """metrics.json 의 "metrics": best.pt 의 시험 결과, 그리고 부록 A(셀 비교표)·B(기울기 비율)의 숫자."""
    bow_accuracy = cells.loc["bow", "test_accuracy"]
    return {
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "best_val_accuracy": best_val_accuracy,
        "bow_test_accuracy": bow_accuracy, "gap_over_bow": test["accuracy"] - bow_accuracy,
        "vocab_size": vocab_size, "gradient_ratio_first_to_last": ratios,
        "cells": {cell: {k: float(v) for k, v in row.items()} for cell, row in cells.iterrows()},
    }


# %% 5. 시각화: 기울기 소실
def long_reviews(stoi: dict[str, int], length: int, seed: int, count: int = 64) -> torch.Tensor:
    """의견 문장이 맨 앞, 뒤는 중립 문장인 절차적 리뷰를 정확히 length 토큰으로: (count, length)."""
    sentences = length // 6 + 2  # 중립 문장 하나 ≈ 7~9 토큰: length 를 넘도록 넉넉히
    texts, _, _ = make_reviews(count, seed + 2, min_filler=sentences, max_filler=sentences,
                               positions=("far",))
    # "head": 의견 문장이 맨 앞에 있는 리뷰의 앞 length 토큰 (실험의 전제라 --truncate 와 무관)
    return torch.tensor([encode(tokenize(text), stoi, length, "head") for text in texts])  # (count, length)


def gradient_per_step(model: RNNClassifier, tokens: torch.Tensor) -> torch.Tensor:
    """로짓을 각 시점 입력 임베딩으로 미분한 기울기의 노름, 배치 평균 (T,).

    마지막 시점(t=T)의 기울기는 바로 들어오고, 먼 과거(t=1)의 기울기는 T-1 번의 순환을
    거슬러 와야 합니다. 바닐라 RNN 은 매번 tanh' x W_hh 를 곱해 지수적으로 줄어듭니다.
    """
    model.eval()  # 드롭아웃이 기울기를 무작위로 지우지 않도록
    lengths = torch.full((tokens.shape[0],), tokens.shape[1], dtype=torch.int64)
    embedded = model.embedding(tokens).detach().requires_grad_(True)  # (B, T, E) 기울기를 받을 잎(leaf)
    model.classify(embedded, lengths).sum().backward()
    model.zero_grad()  # 모델 파라미터에 쌓인 기울기는 쓰지 않음
    return embedded.grad.norm(dim=2).mean(dim=0).cpu()  # (B, T, E) → (T,)


def plot_cell_comparison(table: pd.DataFrame, path, show: bool = False):
    """셀별 시험 정확도 막대그래프 (구조/위치별 정확도가 있으면 묶음 막대)."""
    columns = sorted((c for c in table.columns if c.startswith("acc_")),
                     key=lambda c: (c.endswith("/far"), c)) or ["test_accuracy"]  # near 먼저, far 나중
    fig, ax = plt.subplots(figsize=(10, 4))
    table[columns].rename(columns=lambda c: c.removeprefix("acc_")).plot.bar(ax=ax, rot=0, width=0.8)
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("model (cell)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy by cell" + (" and review kind (structure/position)" if len(columns) > 1 else ""))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # 막대를 가리지 않게 바깥에
    return viz.save_figure(fig, path, show)


def report_test(config: Config, data: TextData, model: RNNClassifier, test: dict, rows: list[dict]) -> None:
    """시험 결과(best.pt)를 글과 그림으로: 확신한 정답·오답, 학습 뒤 임베딩, 패킹, 학습 곡선, 혼동 행렬."""
    out_dir = Path(config.out_dir)
    print(f"[평가] {config.cell} (best.pt) 시험 정확도 {test['accuracy']:.4f}, 손실 {test['loss']:.4f}")
    show_confident_examples(test["probabilities"], data.test)
    one_hot_vs_embedding(data.itos, model.embedding, "good", "great")  # 학습 후: 비슷한 뜻 → 가까워짐
    one_hot_vs_embedding(data.itos, model.embedding, "good", "boring")
    print(f"[패킹] 패킹한 배치 = 하나씩 돌린 결과 (assert 통과). 패킹 없이 <pad> 까지 돌리면 가장 짧은 "
          f"리뷰의 로짓이 {check_packing(model, data.test):.3f} 만큼 달라짐")
    viz.plot_history(rows, out_dir / "history.png", show=config.show, title=f"{config.cell} on {data.name}")
    viz.plot_confusion_matrix(confusion(test["probabilities"], data.test.labels), ["negative", "positive"],
                              out_dir / "confusion_matrix.png", show=config.show,
                              title=f"{config.cell} (test accuracy {test['accuracy']:.3f})")


# %% 6. 추론
EXAMPLE_REVIEWS = [  # 같은 단어, 다른 순서·부정: 단어 주머니에는 둘씩 똑같아 보이는 문장들
    "the plot was good .", "the plot was not good .",
    "the acting was bad but the plot was great .", "the plot was great but the acting was bad .",
]


@torch.no_grad()
def positive_probability(model: nn.Module, tokens: list[str], stoi: dict[str, int], max_len: int,
                         device: torch.device, truncate: str = "head") -> float:
    """토큰화한 리뷰 한 편의 긍정 확률 = sigmoid(로짓). 긴 리뷰는 학습 때와 같은 truncate 로 자름."""
    model.eval()  # 드롭아웃 끄기
    ids = torch.tensor([encode(tokens, stoi, max_len, truncate)], device=device)  # (1, T)
    return torch.sigmoid(model(ids, torch.tensor([ids.shape[1]]))).item()


def check_predict_text(text: str, stoi: dict[str, int],
                       data_name: str) -> tuple[list[str], list[str], str | None]:
    """--predict 문장 검사: (토큰, 어휘에 없는 단어, 경고 또는 None). 쓸 수 없는 글이면 UserError.

    어휘는 학습 분할의 단어뿐이라, 다른 언어의 글은 거의 모두 <unk> 가 됩니다. 그 경우 숫자 하나를
    내놓는 대신 어느 단어를 모르는지와 모델이 무엇으로 학습되었는지를 말합니다.
    """
    tokens = tokenize(text)
    words = [t for t in tokens if re.fullmatch(r"[^\W_]+(?:'[^\W_]+)?", t)]  # 문장부호 제외
    if not words:
        raise UserError(f"--predict 문장이 비어 있습니다 (단어가 없음, 받은 값: {text!r}). "
                        "예: --predict \"this movie was not good at all\"")
    unknown = list(dict.fromkeys(t for t in words if t not in stoi))
    shown = ", ".join(unknown[:8]) + (" …" if len(unknown) > 8 else "")
    trained_on = f"이 모델은 영어 영화 리뷰({data_name})로 학습되어 그 어휘의 영어 단어만 압니다"
    if len(unknown) == len(words):
        raise UserError(f"--predict 문장의 단어가 모두 어휘에 없습니다 ({shown or text.strip()}). "
                        f"{trained_on}: 영어 리뷰로 써 보세요.")
    if len(unknown) > UNKNOWN_WARNING * len(words) or any(not t.isascii() for t in unknown):
        return tokens, unknown, (f"단어 {len(words)}개 중 {len(unknown)}개가 어휘에 없습니다 ({shown}). "
                                 f"{trained_on}: 이 확률은 아는 단어 몇 개로만 낸 것입니다.")
    return tokens, unknown, None


def predict(config: Config, device: torch.device) -> dict:
    """--predict: best.pt 하나로 (모델 설정·어휘가 모두 그 안에) 문장의 긍정 확률을 냅니다.

    어휘는 모델의 일부입니다: 같은 단어가 학습 때와 같은 번호를 받아야 임베딩 행이 맞습니다.
    """
    out_dir = Path(config.out_dir)
    # 먼저 모델 (best.pt 가 없거나 잘못되었으면 여기서 한 줄 오류)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    extra = checkpoint["extra"]
    stoi = {word: index for index, word in enumerate(extra["itos"])}
    tokens, unknown, warning = check_predict_text(config.predict, stoi, extra["data"])
    # 예전 체크포인트(extra 에 truncate 가 없음)는 앞에서부터 잘라 학습했습니다
    probability = positive_probability(model, tokens, stoi, extra["max_len"], device,
                                       extra.get("truncate", "head"))
    label = "positive" if probability > 0.5 else "negative"
    result = {"text": config.predict, "positive_probability": probability, "label": label,
              "cell": checkpoint["model_args"]["cell"], "unknown_words": unknown, "warning": warning}
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    print(f"긍정 확률: {probability:.4f} → {'긍정' if label == 'positive' else '부정'} "
          f"({result['cell']}, 모르는 단어 {len(unknown)}개"
          f"{': ' + ', '.join(unknown[:5]) if unknown else ''})")
    if warning:
        print(f"경고: {warning}")
    print(f"저장: {out_dir / 'prediction.json'}")
    return result


# %% 부록(실험) A. 셀 비교: 같은 데이터·같은 epoch·같은 시작 난수로 네 모델
def train_cell(config: Config, data: TextData, cell: str, epochs: int, device: torch.device,
               max_batches: int | None) -> tuple[nn.Module, float]:
    """셀 하나를 처음부터 메모리 안에서 학습합니다. 반환: (검증 정확도가 가장 높았던 epoch 의 가중치를 실은
    모델, 그 검증 정확도).

    torch.manual_seed(config.seed) 로 시작하므로 숫자가 앞에서 무엇을 했는지(이어하기 여부 포함)와
    상관없습니다. 조기 종료도 기본 실행과 같은 규칙(--patience), 기록은 history_<셀>.csv.
    """
    torch.manual_seed(config.seed)
    model = build_model(**{**classifier_args(config, len(data.itos)), "cell": cell}).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.bow_lr if cell == "bow" else config.lr)
    history = training.History(Path(config.out_dir) / f"history_{cell}.csv")
    best_accuracy, best_state = -math.inf, None
    for epoch in range(1, epochs + 1):
        if early_stop(history, config.patience, best_accuracy, epoch, cell):
            break
        train_loss = train_one_epoch(model, optimizer, data.train, config.batch_size, config.grad_clip,
                                     epoch, device, max_batches, desc=f"{cell} epoch {epoch}")
        val = evaluate(model, data.val, device, max_batches)
        history.log(cell=cell, epoch=epoch, train_loss=train_loss, val_loss=val["loss"],
                    val_accuracy=val["accuracy"])
        if val["accuracy"] > best_accuracy:  # run 블록과 같은 규칙: 더 좋아야(>) 바꿈
            best_accuracy, best_state = val["accuracy"], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model, best_accuracy


def compare_cells(config: Config, data: TextData, main_model: nn.Module, main_result: dict, epochs: int,
                  device: torch.device, max_batches: int | None) -> tuple[dict, pd.DataFrame]:
    """기본 셀(best.pt)과 나머지 셀을 같은 조건으로: 각자 검증 정확도가 가장 높은 epoch 의 가중치로 시험.

    나머지 셀은 체크포인트 없이 train_cell 로 (셀마다 같은 시작 난수, 같은 조기 종료).
    """
    models, results = {config.cell: main_model}, {config.cell: main_result}
    for cell in CELLS:
        if cell in models:
            continue
        model, best_accuracy = train_cell(config, data, cell, epochs, device, max_batches)
        models[cell], results[cell] = model, evaluate(model, data.test, device, max_batches)
        print(f"[비교] {cell:>4}: 검증 최고 {best_accuracy:.4f}, 시험 정확도 {results[cell]['accuracy']:.4f}")
    table = pd.DataFrame({cell: {"test_accuracy": results[cell]["accuracy"],
                                 "test_loss": results[cell]["loss"],
                                 "parameters": sum(p.numel() for p in models[cell].parameters()),
                                 **{f"acc_{k}": v for k, v in results[cell].get("by_kind", {}).items()}}
                          for cell in CELLS}).T  # 행 = 셀, 열 = 지표
    table.index.name = "cell"
    table.to_csv(Path(config.out_dir) / "cells.csv")
    print("[셀 비교표] (acc_구조/위치: 그 종류 리뷰만의 정확도)")
    print(table.drop(columns="test_loss").to_string(float_format=lambda v: f"{v:.3f}",
                                                    formatters={"parameters": "{:,.0f}".format}))
    plot_cell_comparison(table, Path(config.out_dir) / "cells.png", show=config.show)
    paired = paired_comparison(results[config.cell]["probabilities"], results["bow"]["probabilities"],
                               data.test.labels)
    print(verdict_against_bag_of_words(config, data, table, paired))
    return models, table


def paired_comparison(ours: torch.Tensor, baseline: torch.Tensor,
                      labels: torch.Tensor) -> tuple[int, int, float]:
    """같은 시험 리뷰로 짝지어 비교합니다 (McNemar 검정): (우리만 맞힌 수 b, 기준선만 맞힌 수 c, z).

    둘 다 맞히거나 둘 다 틀린 리뷰는 어느 쪽이 나은지에 대해 아무것도 말하지 않으므로 빼고, 갈린 리뷰만
    셉니다. 차이가 없다면 b 와 c 는 동전 던지기처럼 반반: z = (b - c) / √(b + c) 가 ±1.96 밖이면 그런
    결과는 5% 보다 드뭅니다. 두 정확도의 차이 = (b - c) / 리뷰 수. ours, baseline: 긍정 확률 (N,).
    """
    labels = labels[: len(ours)]
    ours_right, baseline_right = (ours > 0.5).float() == labels, (baseline > 0.5).float() == labels
    b = int((ours_right & ~baseline_right).sum())  # 우리만 맞힘
    c = int((~ours_right & baseline_right).sum())  # 기준선만 맞힘
    return b, c, (b - c) / math.sqrt(b + c) if b + c else 0.0


def verdict_against_bag_of_words(config: Config, data: TextData, table: pd.DataFrame,
                                 paired: tuple[int, int, float]) -> str:
    """순환 모델과 순서를 보지 않는 단어 주머니의 판정. 이긴 차이가 잡음 안이면 비겼다고, 지면 이유를 댑니다.

    paired: paired_comparison 의 (순환 모델만 맞힌 수, 단어 주머니만 맞힌 수, z).
    """
    ours, bow = table.loc[config.cell, "test_accuracy"], table.loc["bow", "test_accuracy"]
    only_ours, only_bow, z = paired
    flags = recipe_flags(config, data)  # 이 실행이 아직 쓰지 않은 레시피 플래그
    evidence = (f"같은 시험 리뷰에서 {config.cell} 만 맞힘 {only_ours:,}, 단어 주머니만 맞힘 {only_bow:,}, "
                f"McNemar z = {z:+.2f}")
    if ours > bow and z > Z_95:
        return (f"[판정] {config.cell} 이 단어 주머니를 {100 * (ours - bow):.2f}점 이겼습니다 ({evidence}: "
                "잡음으로 보기 어려움): 어순이 도움이 됩니다.")
    if ours > bow:
        return (f"[판정] {config.cell} 이 단어 주머니를 {100 * (ours - bow):.2f}점 앞섰지만 ({evidence}) "
                f"z 가 {Z_95} 안이라 잡음과 구별되지 않습니다: 이 데이터에서는 비긴 것으로 보고, --seed 를 "
                "바꿔 (분할도 바뀜) 여러 번 재 보세요."
                + (f" 아직 쓰지 않은 레시피: {' '.join(flags)}." if flags else ""))
    reasons = []
    if len(data.train.labels) < SMALL_TRAIN_SET:
        reasons.append(f"학습 리뷰가 {len(data.train.labels):,}개뿐이라 순환망이 어순까지 배우기에 적음")
    if data.truncated_fraction > 0.1:
        lost = {"head": "결론이 흔히 있는 끝부분을", "tail": "첫머리를", "both": "가운데를"}[config.truncate]
        reasons.append(f"리뷰의 {data.truncated_fraction:.0%} 가 {config.max_len} 토큰을 넘어 {lost} 못 봄")
    if data.test.kinds is None:  # 실제 리뷰 (절차적 리뷰는 일부러 단어만으로 풀리지 않게 만듦)
        reasons.append("실제 리뷰는 great·awful 같은 단어만으로 대부분 맞혀 단어 주머니가 강한 기준선")
    if len(reasons) == 0:
        reasons.append("학습이 덜 되었음 (--epochs 를 늘려 보세요)")
    advice = (f"시도해 볼 레시피: {' '.join(flags)} (rt-polarity 에서 단계마다 잰 효과: "
              "benchmarks/rt_polarity_recipe.md)" if flags else
              "레시피의 플래그를 모두 썼습니다: 다음 단계는 사전 학습 임베딩(GloVe 등)이나 더 많은 데이터")
    return (f"[판정] {config.cell} ({ours:.3f}) 이 단어 주머니 ({bow:.3f}) 를 이기지 못했습니다 "
            f"({evidence}). 이유: " + "; ".join(reasons) + f". {advice}.")


def recipe_flags(config: Config, data: TextData) -> list[str]:
    """실제 글에서 순환 모델을 돕는다고 알려진 단계 중 이 실행이 아직 쓰지 않은 것의 플래그.

    1) 긴 리뷰는 끝(결론)도 남기기  2) 양방향  3) 시간 축 최대 풀링  4) 조기 종료와 넉넉한 epoch
    5) 실제 어휘(수천 단어)에 맞는 크기와 강한 드롭아웃 (Kim, 2014 의 문장 분류: 드롭아웃 0.5)
    6) 임베딩 드롭아웃 (드문 단어의 벡터를 외우지 않도록)
    """
    flags = []
    if data.truncated_fraction > 0.1 and config.truncate == "head":
        flags.append("--truncate both")
    if not config.bidirectional:
        flags.append("--bidirectional")
    if config.pooling == "last":
        flags.append("--pooling max")
    if config.epochs < RECIPE_EPOCHS or config.patience > RECIPE_PATIENCE:
        flags.append(f"--epochs {RECIPE_EPOCHS} --patience {RECIPE_PATIENCE}")
    if config.embed_dim < RECIPE_SIZE or config.hidden_size < RECIPE_SIZE:
        flags.append(f"--embed-dim {RECIPE_SIZE} --hidden-size {RECIPE_SIZE}")
    if config.dropout < RECIPE_DROPOUT:
        flags.append(f"--dropout {RECIPE_DROPOUT}")
    if config.embed_dropout < RECIPE_EMBED_DROPOUT:
        flags.append(f"--embed-dropout {RECIPE_EMBED_DROPOUT}")
    return flags


# %% 부록(실험) B. 기울기 소실: 학습된 RNN·LSTM·GRU 에 '의견이 맨 앞'인 긴 리뷰
def vanishing_gradient_study(config: Config, models: dict, itos: list[str], device: torch.device) -> dict:
    """시점별 기울기 크기. 결론이 맨 앞에 있으니 잘 배운 모델이라면 앞쪽 기울기가 커야 합니다.

    난수를 쓰지 않습니다 (긴 리뷰는 seed 로 정해지는 절차적 리뷰, 모델은 eval 모드).
    """
    stoi = {word: index for index, word in enumerate(itos)}
    long_tokens = long_reviews(stoi, config.long_seq_len, config.seed).to(device)  # (64, long_seq_len)
    gradients = {cell: gradient_per_step(models[cell], long_tokens) for cell in ("rnn", "lstm", "gru")}
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for cell, gradient in gradients.items():
        ax.plot(range(1, len(gradient) + 1), gradient.tolist(), label=cell)
    ax.set_yscale("log")  # 지수적으로 줄어드는 것이 직선으로 보이도록
    ax.set_xlabel("input time step t (T = last token)")
    ax.set_ylabel("mean ||d logit / d x_t|| (log scale)")
    ax.set_title(f"Gradient w.r.t. each step's input embedding (T={config.long_seq_len})")
    ax.grid(alpha=0.3)
    ax.legend()
    viz.save_figure(fig, Path(config.out_dir) / "vanishing_gradient.png", config.show)
    ratios = {cell: (g[0] / g[-1]).item() for cell, g in gradients.items()}
    print("[기울기 소실] 첫 토큰 / 마지막 토큰 기울기 비율: "
          + ", ".join(f"{cell} {ratio:.1e}" for cell, ratio in ratios.items()))
    return ratios


# %% 부록(실험) C. 어순만 다른 문장들 (절차적 리뷰의 어휘로 쓴 예문이라 오프라인 데이터에서만)
def order_examples(model: nn.Module, itos: list[str], max_len: int, device: torch.device) -> None:
    stoi = {word: index for index, word in enumerate(itos)}
    for sentence in EXAMPLE_REVIEWS:
        probability = positive_probability(model, tokenize(sentence), stoi, max_len, device)
        print(f"[추론] 긍정 확률 {probability:.3f} | {sentence}")


# %% main: 목차(table of contents). 각 줄이 위의 한 절입니다.
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    out_dir = Path(config.out_dir)
    if config.predict is not None:
        return predict(config, device)
    max_batches = 1 if config.smoke else None  # --smoke: 학습 배치 하나, 평가 배치 하나
    epochs = min(config.epochs, 3) if config.smoke else config.epochs

    # 1. 데이터 (분할은 자기 난수 생성기로: 전역 난수와 무관)
    data = prepare_data(config)
    # 2. 모델 (+ 손 RNN 검증, 원-핫 vs 임베딩)
    print(f"[손 RNN 점화식] nn.RNN 과 최대 차이 {check_rnn_by_hand():.1e} (assert 통과)")
    model_args = classifier_args(config, len(data.itos))
    torch.manual_seed(config.seed)  # 초기 가중치와 학습 중 섞기·드롭아웃은 모두 전역 torch 난수
    model = build_model(**model_args).to(device)
    n_parameters = sum(p.numel() for p in model.parameters())  # 파라미터 수 = 모든 가중치 텐서의 원소 수 합
    print(f"장치(device): {device} | 데이터: {data.name} | 파라미터: {n_parameters:,}개")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    one_hot_vs_embedding(data.itos, model.embedding, "good", "great")

    # 3. 학습: 어휘·최대 길이는 예측에 필요하므로 체크포인트의 extra 에 함께 저장
    extra = {"data": data.name, "itos": data.itos, "max_len": config.max_len, "truncate": config.truncate}
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, history=history, extra=extra)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, history=history, best=-math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if early_stop(history, config.patience, best, epoch, config.cell):  # 기록으로: 이어하기도 같음
                break
            train_loss = train_one_epoch(model, optimizer, data.train, config.batch_size, config.grad_clip,
                                         epoch, device, max_batches)
            val = evaluate(model, data.val, device, max_batches)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=val["loss"],
                        val_accuracy=val["accuracy"])
            if val["accuracy"] > best:  # 검증 정확도, 클수록 좋음 (같으면 먼저 것을 유지)
                best = val["accuracy"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    model, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device, purpose="test")
    test = evaluate(model, data.test, device, max_batches)  # 시험 점수는 언제나 best.pt 로

    # 4·5. 평가와 시각화: best.pt 의 시험 결과를 글과 그림으로
    report_test(config, data, model, test, history.rows)

    # 부록(실험): run 블록 뒤에, 각자 자기 시드로 (이어하기와 상관없이 같은 숫자)
    models, table = compare_cells(config, data, model, test, epochs, device, max_batches)
    ratios = vanishing_gradient_study(config, models, data.itos, device)
    if data.test.kinds is not None:
        order_examples(model, data.itos, config.max_len, device)

    metrics = summarize_metrics(test, best, table, ratios, len(data.itos))
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.perf_counter() - started, parameters=n_parameters,
                     metrics=metrics, headline="test_accuracy")
    print(f"끝: {time.perf_counter() - started:.0f}초, 결과는 {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
