"""11장 이상 탐지를 열 숫자 모두에 대해: 숫자마다 그 숫자만으로 학습한 밀집 오토인코더와 PCA 의 AUROC.

    python benchmarks/anomaly_all_digits.py --data-dir ../shared/data/mnist          # 실제 MNIST
    python benchmarks/anomaly_all_digits.py --data offline                           # sklearn digits
    python benchmarks/anomaly_all_digits.py --data-dir ../shared/data/mnist --seeds 42,43,44

Deep SVDD 논문(Ruff 2018)의 one-class MNIST 방식: 정상 = 한 숫자 (학습 분할의 그 숫자만으로 학습),
시험 = 시험 분할 전체 (그 숫자 = 음성, 나머지 아홉 = 양성). 장의 `one_class_anomaly` 를 그대로 불러
쓰므로 장과 같은 모델·같은 점수·같은 문턱값입니다 (숫자마다 이상 탐지 모델만 학습). 결과는 화면 표와
outputs/benchmarks/anomaly_all_digits[_<data>].json (results.json 과 따로).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_chapter():
    """11_autoencoder_anomaly.py 를 모듈로 (이름이 숫자로 시작해 import 문으로는 못 읽음)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("chapter_11", ROOT / "11_autoencoder_anomaly.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass 가 모듈을 찾을 수 있도록
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="real", choices=["auto", "real", "offline"])
    parser.add_argument("--data-dir", default="data", help="MNIST 가 있는 폴더 (torchvision 배치)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion"])
    parser.add_argument("--seeds", default="42", help="쉼표로 구분한 시드들 (시드마다 열 숫자 모두)")
    parser.add_argument("--anomaly-steps", type=int, default=None, help="장의 기본값 대신 쓸 학습 걸음 수")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    options = parser.parse_args()
    chapter = load_chapter()
    seeds = [int(s) for s in options.seeds.split(",") if s.strip()]
    overrides = {} if options.anomaly_steps is None else {"anomaly_steps": options.anomaly_steps}
    device = chapter.pick_device(options.device)
    rows, started = [], time.perf_counter()
    for seed in seeds:
        config = chapter.Config(data=options.data, data_dir=options.data_dir, dataset=options.dataset,
                                seed=seed, **overrides)
        data = chapter.load_data(config)  # 시드마다 검증 분할이 다름 (장과 같음)
        for digit in range(len(data.classes)):
            tick = time.perf_counter()
            digit_config = dataclasses.replace(config, normal_digit=digit)
            metrics, *_ = chapter.one_class_anomaly(data, digit_config, device)
            rows.append({"seed": seed, "normal_digit": digit, **metrics,
                         "seconds": round(time.perf_counter() - tick, 1)})
            print(f"seed {seed} 정상 {data.classes[digit]:>11}: AUROC AE {metrics['auroc']:.4f} · "
                  f"PCA {metrics['pca_auroc']:.4f} · 정밀도 {metrics['anomaly_precision']:.3f} · "
                  f"재현율 {metrics['anomaly_recall']:.3f} · {rows[-1]['seconds']} s", flush=True)
    summary = {}
    for seed in seeds:
        mine = [r for r in rows if r["seed"] == seed]
        summary[seed] = {key: statistics.mean(r[key] for r in mine)
                         for key in ("auroc", "pca_auroc", "anomaly_precision", "anomaly_recall")}
        wins = sum(r["auroc"] > r["pca_auroc"] for r in mine)
        print(f"seed {seed}: 평균 AUROC 밀집 AE {summary[seed]['auroc']:.4f} vs "
              f"PCA {summary[seed]['pca_auroc']:.4f} (숫자 {len(mine)}개, AE 가 이긴 숫자 {wins}개)")
    seconds = time.perf_counter() - started
    print(f"{data.name}, {len(seeds)} 시드, {seconds:.0f} s, torch 스레드 {torch.get_num_threads()}")
    out_dir = ROOT / "outputs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"anomaly_all_digits_{options.dataset}_{options.data}.json"
    path.write_text(json.dumps({"data": data.name, "seeds": seeds, "seconds": round(seconds, 1),
                                "threads": torch.get_num_threads(), "mean_by_seed": summary, "runs": rows},
                               indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"→ {path}")


if __name__ == "__main__":
    main()
