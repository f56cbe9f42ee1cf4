"""모든 장의 기본 실행을 시드 세 개로 돌려 시간·최대 메모리·지표를 benchmarks/ 에 기록합니다.

    python benchmarks/run_all.py                          # 모든 장, --data offline, 시드 42,43,44
    python benchmarks/run_all.py --only 01,02
    python benchmarks/run_all.py --only 01 --data real --data-dir ../shared/data/mnist
    python benchmarks/run_all.py --docs-only              # 측정 없이 문서의 숫자만 다시 씀
    python benchmarks/run_all.py --only 03,08 --nproc 2   # torchrun 2 프로세스(DDP)로: 03·08 만 지원

결과는 benchmarks/results.json 에 (장, 플래그)별로 쌓입니다: 시드마다의 측정(`runs`)과, 숫자 지표마다
중앙값·최솟값·최댓값(`metrics`), 벽시계 시간과 최대 메모리의 같은 요약. 그다음 RESULTS.md, 각 장
docstring 의 [results] … [/results] 블록, README 의 결과 표를 그 파일에서 다시 씁니다
(tests/test_numbers.py 가 어긋나면 실패합니다). 공유 기계는 잡음이 커서 시간은 중앙값을 씁니다.
한 번에 하나씩만 재세요: 2코어에서 두 측정을 함께 돌리면 둘 다 틀립니다.
각 장의 출력은 outputs/benchmarks/<장>/ 에 남습니다.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"


def machine_description() -> dict:
    """CPU 모델, 코어 수, 메모리, OS, 파이썬·PyTorch 버전, GPU."""
    cpu = platform.processor() or platform.machine()
    memory_gb = None
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if meminfo.exists():
        kilobytes = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory_gb = round(kilobytes / 1024 ** 2, 1)
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gb": memory_gb,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "torch": torch.__version__, "gpu": gpu}


DDP_CHAPTERS = {"03", "08"}  # torchrun + DistributedDataParallel 을 지원하는 장 (--nproc)


def launcher(nproc: int) -> list[str]:
    """스크립트 앞에 붙일 명령: 프로세스 하나면 python, 여럿이면 torchrun (= python -m torch.distributed.run).

    torchrun 은 OMP_NUM_THREADS 가 없으면 프로세스마다 1 로 둡니다 (2코어에 2 프로세스 × 1스레드).
    """
    if nproc == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def run_once(script: Path, args: list[str], out_dir: Path, nproc: int = 1) -> dict:
    """한 번 실행: 벽시계 시간(wall seconds), 자식 프로세스의 최대 상주 메모리(peak RSS), 실행 기록.

    nproc > 1 이면 torchrun 으로 띄웁니다. 최대 메모리는 wait4 가 주는 값이라 프로세스들 중 가장 큰
    하나의 값입니다 (합이 아님).
    """
    command = [*launcher(nproc), str(script), *args, "--out-dir", str(out_dir)]
    env = dict(os.environ, MPLBACKEND="Agg")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    peak_mb = None
    if hasattr(os, "wait4"):  # Linux, macOS: 이 자식 하나의 자원 사용량
        _, status, usage = os.wait4(process.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        scale = 1024 ** 2 if sys.platform == "darwin" else 1024  # macOS 는 바이트, Linux 는 KB
        peak_mb = usage.ru_maxrss / scale
        process.returncode = returncode
    else:  # Windows: 메모리는 재지 않음
        returncode = process.wait()
    seconds = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"{script.name} 실패 (종료 코드 {returncode}):\n{output[-3000:]}")
    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "peak_mb": peak_mb, "record": record}


DEFAULT_SEEDS = "42,43,44"  # 42 = 각 장의 기본 시드 (학습자가 처음 보는 숫자) + 둘 더
# docstring·README 에 옮길 지표 (대표 지표 headline 은 늘 포함). 없는 키는 건너뜁니다.
QUOTED = {
    "01": ["test_accuracy"],
    "02": ["test_accuracy"],
    "03": ["test_accuracy", "mlp_test_accuracy"],
    "04": ["test_accuracy", "bow_test_accuracy"],
    "05": ["test_rmse", "persistence_rmse"],
    "06": ["test_map50", "test_map50_95", "train_map50"],
    "07": ["min_class_fraction", "class_entropy", "fd", "fd_untrained", "fd_real", "toy_modes_captured",
           "toy_high_quality_fraction"],
    "08": ["test_bleu", "test_bleu_lowercase_tokens", "test_bleu_beam"],
    "09": ["test_iou", "test_dice", "test_pixel_accuracy", "test_iou_per_image", "no_skip_test_iou",
           "test_auc", "test_sensitivity", "test_specificity", "train_dice", "test_images"],
    "10": ["test_sequence_accuracy", "test_cer", "train_sequence_accuracy"],
    "11": ["denoise_psnr", "noisy_psnr", "pca_psnr", "filter_psnr", "denoise_ssim", "auroc", "pca_auroc",
           "probe_accuracy", "pca_probe_accuracy", "vae_test_neg_elbo"],
    "12": ["set5_bicubic_psnr", "set5_srcnn_psnr", "set5_srgan_psnr", "set5_ssim", "set14_psnr",
           "set14_bicubic_psnr", "sharpness_psnr_model", "sharpness_srgan", "heldout_bicubic_psnr",
           "heldout_srcnn_psnr", "heldout_srgan_psnr", "sharpness_bicubic"],
}
BLOCK_BEGIN, BLOCK_END = "[results]", "[/results]"
README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def numeric_scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="쉼표로 구분한 장 번호, 예: 01,02 (비우면 전부)")
    parser.add_argument("--data", default="offline", choices=["offline", "auto", "real"],
                        help="각 장에 넘길 --data")
    parser.add_argument("--data-dir", default="", help="각 장에 넘길 --data-dir (비우면 장의 기본값)")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="쉼표로 구분한 시드들: 시드마다 한 번 실행")
    parser.add_argument("--extra", default="", help="각 장에 그대로 넘길 추가 플래그, 예: '--epochs 5'")
    parser.add_argument("--docs-only", action="store_true", help="측정하지 않고 문서의 숫자만 다시 씀")
    parser.add_argument("--nproc", type=int, default=1,
                        help="프로세스 수: 1 이면 python, 2 이상이면 torchrun --standalone "
                             f"--nproc_per_node N (DDP 를 지원하는 장만: {', '.join(sorted(DDP_CHAPTERS))})")
    parser.add_argument("--keep-other-seeds", action="store_true",
                        help="results.json 에 이미 있는 다른 시드의 측정을 버리지 않고 합침 "
                             "(예: 시드 42 를 잰 뒤 --seeds 43,44 만 더 잴 때)")
    options = parser.parse_args()
    try:
        seeds = [int(s) for s in options.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {options.seeds}: 쉼표로 구분한 정수여야 합니다")
    if not seeds:
        parser.error("--seeds 에 시드가 하나는 있어야 합니다")

    if options.nproc < 1:
        parser.error(f"--nproc {options.nproc}: 1 이상이어야 합니다")
    wanted = {n.strip() for n in options.only.split(",") if n.strip()}
    if options.nproc > 1:
        if wanted - DDP_CHAPTERS:
            parser.error(f"--nproc {options.nproc}: torchrun(DDP)은 {', '.join(sorted(DDP_CHAPTERS))} 장만 "
                         f"지원합니다 (--only {options.only})")
        wanted = wanted or DDP_CHAPTERS
    scripts = [p for p in sorted(ROOT.glob("[0-9][0-9]_*.py")) if not wanted or p.name[:2] in wanted]
    if not scripts:
        parser.error(f"--only {options.only}: 해당하는 장이 없습니다")
    args = ["--data", options.data]
    if options.data_dir:
        args += ["--data-dir", options.data_dir]
    args += options.extra.split()

    results = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    machine = machine_description()
    for script in [] if options.docs_only else scripts:
        # 프로세스 수가 다른 측정은 다른 항목 (한 프로세스의 키는 예전 그대로)
        key = f"{script.stem} {' '.join(args)}" + (f" --nproc {options.nproc}" if options.nproc > 1 else "")
        runs = []
        for seed in seeds:
            nproc_suffix = f"_nproc{options.nproc}" if options.nproc > 1 else ""
            out_dir = ROOT / "outputs" / "benchmarks" / f"{script.stem}_seed{seed}{nproc_suffix}"
            print(f"[seed {seed}] {script.name} {' '.join(args)} (프로세스 {options.nproc}개) ...",
                  flush=True)
            run = run_once(script, [*args, "--seed", str(seed)], out_dir, options.nproc)
            record = run["record"]
            runs.append({"seed": seed, "wall_seconds": round(run["seconds"], 1),
                         "peak_mb": round(run["peak_mb"]) if run["peak_mb"] else None,
                         "data": record["data"], "metrics": record["metrics"],
                         "timing": record.get("timing", {})})
            print(f"    {run['seconds']:.1f} s, peak {run['peak_mb'] or float('nan'):.0f} MB, "
                  f"{record['headline']}", flush=True)
        # 다시 읽고 이 항목만 바꿔 씀: 다른 run_all 이 그사이 쓴 항목(같은 항목의 다른 시드 포함)을 지우지
        # 않게 (긴 실측은 시드를 나눠 따로 돌리기도 함)
        results = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
        if options.keep_other_seeds and key in results:
            runs = [r for r in results[key]["runs"] if r["seed"] not in seeds] + runs
            runs.sort(key=lambda r: r["seed"])
        metric_names = set.intersection(*(set(numeric_scalars(r["metrics"])) for r in runs))
        timing_names = set.intersection(*(set(numeric_scalars(r["timing"])) for r in runs))
        peaks = [r["peak_mb"] for r in runs if r["peak_mb"] is not None]
        results[key] = {
            "script": script.name, "args": " ".join(args), "nproc": options.nproc, "data": runs[0]["data"],
            "device": record["device"], "headline": record["headline"]["name"],
            "seeds": [r["seed"] for r in runs],
            "metrics": {n: summarize([r["metrics"][n] for r in runs]) for n in sorted(metric_names)},
            "timing": {n: summarize([r["timing"][n] for r in runs]) for n in sorted(timing_names)},
            "wall_seconds": summarize([r["wall_seconds"] for r in runs]),
            "peak_mb": summarize(peaks) if peaks else None,
            "runs": runs,
            "machine": machine, "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        }
        RESULTS_JSON.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    write_markdown(results)
    for path, text in rendered_documents(results).items():
        path.write_text(text, encoding="utf-8")
    print(f"\n→ {RESULTS_MD.relative_to(ROOT)}, 각 장 docstring 의 {BLOCK_BEGIN} 블록, README 의 결과 표")


def fmt(value: float) -> str:
    """지표는 유효 숫자 네 자리 (0.9611, 14.99, 431.2, 1690)."""
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def spread(summary: dict, form=fmt) -> str:
    """중앙값 (최소–최대). 세 값이 같게 보이면 중앙값만."""
    median, low, high = (form(summary[k]) for k in ("median", "min", "max"))
    return median if low == high else f"{median} ({low}–{high})"


def seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def quoted_names(entry: dict) -> list[str]:
    wanted = [entry["headline"], *QUOTED.get(entry["script"][:2], [])]
    return [n for n in dict.fromkeys(wanted) if n in entry["metrics"]]


def machine_line(machine: dict) -> str:
    return (f"{machine['cpu']}, {machine['cores']} cores ({machine['torch_threads']} torch threads), "
            f"GPU: {machine['gpu']}, torch {machine['torch']}")


def entry_lines(entry: dict) -> list[str]:
    """한 (장, 플래그) 결과를 두 줄로: 무엇을 어디서 / 숫자들."""
    seeds = ", ".join(str(s) for s in sorted(entry["seeds"]))
    head = f"`{entry['args']}` · {entry['data']} · {entry['device']} · seeds {seeds}"
    if entry.get("nproc", 1) > 1:  # torchrun 으로 잰 항목만 표시 (한 프로세스 항목의 문구는 예전 그대로)
        head = f"`torchrun --nproc_per_node {entry['nproc']}` " + head
    numbers = [f"{n} {spread(entry['metrics'][n])}" for n in quoted_names(entry)]
    numbers += [f"{n} {spread(v)}" for n, v in entry.get("timing", {}).items()]
    numbers.append(f"wall {spread(entry['wall_seconds'], seconds)} s")
    if entry.get("peak_mb"):
        numbers.append(f"peak {entry['peak_mb']['median'] / 1024:.2f} GB")
    return [head, " · ".join(numbers)]


def docstring_block(results: dict, script_name: str) -> list[str]:
    entries = [results[k] for k in sorted(results) if results[k]["script"] == script_name]
    lines = [f"    {BLOCK_BEGIN} benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)"]
    machines = {machine_line(entry["machine"]) for entry in entries}
    for entry in entries:
        head, numbers = entry_lines(entry)
        head_chunks = wrap(head, 100)  # 긴 데이터 이름도 한 줄 110자(ruff) 안에
        lines.append(f"    - {head_chunks[0]}")
        lines += [f"      {chunk}" for chunk in head_chunks[1:]]
        lines += [f"      {chunk}" for chunk in wrap(numbers, 96)]
        if len(machines) > 1:  # 항목마다 다른 기계·스레드 수로 잼: 시간을 견줄 수 있게 항목마다 적음
            lines.append(f"      기계: {machine_line(entry['machine'])}")
    if len(machines) == 1:
        lines.append(f"    - 기계: {machines.pop()}")
    lines.append(f"    {BLOCK_END}")
    return lines


def wrap(text: str, width: int) -> list[str]:
    """' · ' 에서만 줄을 나눕니다 (숫자가 줄 사이에서 갈라지지 않게)."""
    lines, current = [], ""
    for part in text.split(" · "):
        candidate = f"{current} · {part}" if current else part
        if len(candidate) > width and current:
            lines.append(current)
            current = part
        else:
            current = candidate
    return lines + [current]


def readme_table(results: dict) -> list[str]:
    # 행마다 어느 기계·스레드 수로 쟀는지 (A, B, …): 벽시계는 같은 기계의 행끼리만 견줄 수 있음
    labels = machine_labels(results)
    lines = [README_BEGIN,
             "| script | flags | data | seeds | headline: median (min–max) | wall s | peak GB | machine |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted(results):
        entry = results[key]
        name = entry["headline"]
        peak = f"{entry['peak_mb']['median'] / 1024:.2f}" if entry.get("peak_mb") else "n/a"
        flags = entry["args"] + (f" (torchrun ×{entry['nproc']})" if entry.get("nproc", 1) > 1 else "")
        lines.append(f"| {entry['script']} | `{flags}` | {entry['data']} | {len(entry['seeds'])} | "
                     f"{name} {spread(entry['metrics'][name])} | {spread(entry['wall_seconds'], seconds)} | "
                     f"{peak} | {labels[machine_line(entry['machine'])]} |")
    lines += ["", *(f"Machine {label}: {m}." for m, label in labels.items()), README_END]
    return lines


def machine_labels(results: dict) -> dict[str, str]:
    """기계 설명 → 'A', 'B', … (설명의 알파벳 순)."""
    machines = sorted({machine_line(e["machine"]) for e in results.values()})
    return {m: chr(ord("A") + i) for i, m in enumerate(machines)}


def replace_between(text: str, begin: str, end: str, new_lines: list[str]) -> str:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(begin)]
    ends = [i for i, line in enumerate(lines) if line.strip().startswith(end)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        return text
    return "\n".join(lines[:starts[0]] + new_lines + lines[ends[0] + 1:])


def rendered_documents(results: dict) -> dict[Path, str]:
    """결과 파일에서 다시 쓴 각 장과 README 의 전체 내용 (블록이 있는 파일만)."""
    documents = {}
    for script in sorted(ROOT.glob("[0-9][0-9]_*.py")):
        if not any(entry["script"] == script.name for entry in results.values()):
            continue
        text = script.read_text(encoding="utf-8")
        documents[script] = replace_between(text, BLOCK_BEGIN, BLOCK_END,
                                            docstring_block(results, script.name))
    readme = ROOT / "README.md"
    documents[readme] = replace_between(readme.read_text(encoding="utf-8"), README_BEGIN, README_END,
                                        readme_table(results))
    return documents


def write_markdown(results: dict) -> None:
    lines = ["# Benchmark results", "",
             "`python benchmarks/run_all.py` 가 만든 파일입니다. 손으로 고치지 마세요. "
             "숫자는 시드마다 한 번씩 돌린 값의 중앙값 (최소–최대) 입니다.", ""]
    labels = machine_labels(results)
    for key in sorted(results):
        head, numbers = entry_lines(results[key])
        lines += [f"## {results[key]['script']}", "", f"- {head}", f"- {numbers}",
                  f"- measured at {results[key]['measured_at']} on machine "
                  f"{labels[machine_line(results[key]['machine'])]}", ""]
    lines += ["## Machine" + ("s" if len(labels) > 1 else ""), ""]
    lines += [*(f"- {label}: {m}" for m, label in labels.items()), ""]
    RESULTS_MD.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
