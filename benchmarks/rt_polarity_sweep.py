"""04장 레시피 고르기: rt-polarity 에서 한 모델만 학습해 검증 최고 정확도와 그 epoch 의 시험 정확도를 잽니다.

장 전체(셀 비교·기울기 실험)를 돌리지 않고 모델 하나씩, 여러 설정 x 시드를 프로세스 여럿에 나눠 돌립니다.
학습은 04 의 train_cell 그대로입니다 (장의 셀 비교와 같은 분할·어휘·학습 단계·조기 종료, 같은 숫자).
장에 없는 두 변형만 여기서 모델에 붙여 봅니다: 단어 주머니의 임베딩 드롭아웃, 단어 드롭아웃(학습 중
토큰을 <unk> 로).
고르는 기준은 검증 정확도입니다 (시험 정확도는 기록만). 결과: benchmarks/rt_polarity_recipe.md.

    python benchmarks/rt_polarity_sweep.py --cells lstm bow --seeds 42 43 44 \\
        --variants '{"name": "ed5", "embed_dropout": 0.5}' --out sweep.jsonl
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import multiprocessing
import sys
import tempfile
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
build_model = ch04.build_model  # 장의 원래 것 (run_one 이 변형으로 감쌈)

# 레시피 (benchmarks/rt_polarity_recipe.md 의 단계 4): 변형은 이 위에 덮어씀
RECIPE = dict(bidirectional=True, pooling="max", epochs=20, patience=3, embed_dim=128, hidden_size=128,
              dropout=0.5)


def with_sweep_variants(build_model, word_dropout: float, bag_embed_dropout: float):
    """04 의 build_model 을 감싸 장에 없는 두 변형을 붙입니다 (학습 중에만, eval() 에서는 그대로).

    - 단어 드롭아웃(word dropout): 학습 배치의 진짜 토큰을 이 비율만큼 <unk> 로 (모든 모델).
    - 단어 주머니의 임베딩 드롭아웃: '임베딩 → 드롭아웃 → 패딩 뺀 평균' (EmbeddingBag 과 같은 가중치).
    """
    def build(**model_args):
        model = build_model(**model_args)
        forward = model.forward
        drop = nn.Dropout(bag_embed_dropout)

        def bag_forward(tokens, lengths):
            vectors = drop(F.embedding(tokens, model.bag.weight, padding_idx=ch04.PAD_ID))  # (B, T, E)
            real = (tokens != ch04.PAD_ID).unsqueeze(2).float()  # (B, T, 1)
            return model.head((vectors * real).sum(1) / real.sum(1).clamp(min=1)).squeeze(1)

        if model_args["cell"] == "bow" and bag_embed_dropout > 0:
            model.add_module("bag_embed_dropout", drop)  # train()/eval() 을 따라가도록
            forward = bag_forward

        def forward_with_word_dropout(tokens, lengths):
            if model.training and word_dropout > 0:
                hit = (torch.rand(tokens.shape) < word_dropout) & (tokens != ch04.PAD_ID)
                tokens = tokens.masked_fill(hit, ch04.UNK_ID)
            return forward(tokens, lengths)

        model.forward = forward_with_word_dropout
        return model

    return build


def run_one(variant: dict, seed: int, cell: str, data_dir: str) -> dict:
    """설정 하나 x 시드 하나 x 모델 하나: 04 의 train_cell (장의 셀 비교와 같은 학습·조기 종료) 그대로."""
    torch.set_num_threads(1)
    settings = dict(variant)
    name = settings.pop("name")
    word_dropout = settings.pop("word_dropout", 0.0)
    with tempfile.TemporaryDirectory() as out_dir, contextlib.redirect_stdout(io.StringIO()):
        config = ch04.Config(data="real", data_dir=data_dir, seed=seed, device="cpu", out_dir=out_dir,
                             **{**RECIPE, **settings})
        data = ch04.prepare_data(config)
        bag_embed_dropout = config.embed_dropout if cell == "bow" else 0.0  # 장의 단어 주머니는 쓰지 않음
        ch04.build_model = with_sweep_variants(build_model, word_dropout, bag_embed_dropout)
        started = time.perf_counter()
        model, best = ch04.train_cell(config, data, cell, config.epochs, torch.device("cpu"), None)
        epochs = len(ch04.training.History(Path(out_dir) / f"history_{cell}.csv", resume=True).rows)
    test = ch04.evaluate(model, data.test, torch.device("cpu"))["accuracy"]
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
