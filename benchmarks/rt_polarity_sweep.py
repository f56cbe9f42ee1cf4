"""04장 레시피 고르기: rt-polarity 에서 한 모델만 학습해 검증 최고 정확도와 그 epoch 의 시험 정확도를 잽니다.

장 전체(셀 비교·기울기 실험)를 돌리지 않고 모델 하나씩, 여러 설정 x 시드를 프로세스 여럿에 나눠 돌립니다.
장과 같은 분할·어휘·학습 단계(04 의 prepare_data, build_model, batch_slices, evaluate)를 쓰고, 장에 없는
두 가지 변형만 여기서 붙여 봅니다: 단어 주머니의 임베딩 드롭아웃, 단어 드롭아웃(학습 중 토큰을 <unk> 로).
고르는 기준은 검증 정확도입니다 (시험 정확도는 기록만). 결과: benchmarks/rt_polarity_recipe.md.

    python benchmarks/rt_polarity_sweep.py --cells lstm bow --seeds 42 43 44 \\
        --variants '{"name": "ed5", "embed_dropout": 0.5}' --out sweep.jsonl
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("ch04", ROOT / "04_rnn_text_classification.py")
ch04 = importlib.util.module_from_spec(_spec)
sys.modules["ch04"] = ch04
_spec.loader.exec_module(ch04)

# 레시피 (benchmarks/rt_polarity_recipe.md 의 단계 4): 변형은 이 위에 덮어씀
RECIPE = dict(bidirectional=True, pooling="max", epochs=20, patience=3, embed_dim=128, hidden_size=128,
              dropout=0.5)


def bag_with_embedding_dropout(model: ch04.BagOfWords, p: float):
    """단어 주머니의 forward 를 '임베딩 → 드롭아웃 → 패딩 뺀 평균' 으로 (EmbeddingBag 과 같은 가중치)."""
    drop = nn.Dropout(p)

    def forward(tokens, lengths):
        vectors = F.embedding(tokens, model.bag.weight, padding_idx=ch04.PAD_ID)  # (B, T, E)
        vectors = drop(vectors) if model.training else vectors
        real = (tokens != ch04.PAD_ID).unsqueeze(2).float()  # (B, T, 1)
        return model.head((vectors * real).sum(1) / real.sum(1).clamp(min=1)).squeeze(1)

    model.forward = forward


def run_one(variant: dict, seed: int, cell: str, data_dir: str) -> dict:
    torch.set_num_threads(1)
    settings = dict(variant)
    name = settings.pop("name")
    word_dropout = settings.pop("word_dropout", 0.0)
    config = ch04.Config(data="real", data_dir=data_dir, seed=seed, device="cpu", out_dir="",
                         **{**RECIPE, **settings})
    with contextlib.redirect_stdout(io.StringIO()):
        data = ch04.prepare_data(config)
    torch.manual_seed(seed)
    model = ch04.build_model(**{**ch04.classifier_args(config, len(data.itos)), "cell": cell})
    if cell == "bow" and config.embed_dropout > 0:
        bag_with_embedding_dropout(model, config.embed_dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.bow_lr if cell == "bow" else config.lr)
    cpu, started = torch.device("cpu"), time.perf_counter()
    best, best_state, since, epochs = -math.inf, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        if since >= config.patience:
            break
        model.train()
        for rows in ch04.batch_slices(len(data.train.labels), config.batch_size, shuffle=True):
            tokens, lengths, labels = ch04.take_batch(data.train, rows, cpu)
            if word_dropout:
                hit = (torch.rand(tokens.shape) < word_dropout) & (tokens != ch04.PAD_ID)
                tokens = tokens.masked_fill(hit, ch04.UNK_ID)
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(tokens, lengths), labels)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        val, epochs = ch04.evaluate(model, data.val, cpu)["accuracy"], epoch
        best, best_state, since = (val, copy.deepcopy(model.state_dict()), 0) if val > best else (
            best, best_state, since + 1)
    model.load_state_dict(best_state)
    test = ch04.evaluate(model, data.test, cpu)["accuracy"]
    return {"name": name, "seed": seed, "cell": cell, "val": round(best, 4), "test": round(test, 4),
            "epochs": epochs, "seconds": round(time.perf_counter() - started, 1)}


def _run_job(job: tuple) -> dict:
    return run_one(*job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=['{"name": "recipe"}'],
                        help="JSON 하나에 설정 하나 (name 과 Config 필드, word_dropout)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--cells", nargs="+", default=["lstm", "bow"])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "rt-polarity"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="rt_polarity_sweep.jsonl")
    args = parser.parse_args()
    jobs = [(json.loads(variant), seed, cell, args.data_dir)
            for variant in args.variants for seed in args.seeds for cell in args.cells]
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        for row in pool.imap(_run_job, jobs):
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as file:
                file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
