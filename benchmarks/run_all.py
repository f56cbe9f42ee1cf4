"""모든 장의 기본 실행을 돌려 걸린 시간·최대 메모리·대표 지표를 benchmarks/RESULTS.md 에 씁니다.

    python benchmarks/run_all.py                       # 모든 장, --data offline, 1회
    python benchmarks/run_all.py --only 01,02 --repeat 3
    python benchmarks/run_all.py --only 01 --data real --data-dir ../shared/data/mnist

결과는 benchmarks/results.json 에 (장, 데이터 설정)별로 쌓이고, RESULTS.md 는 그 전체로
다시 만들어집니다. 그래서 일부 장만 다시 재도 나머지 줄은 그대로 남습니다.
반복하면 시간과 메모리는 중앙값(median)을 씁니다 (공유 기계라 잡음이 큼).
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


def run_once(script: Path, args: list[str], out_dir: Path) -> dict:
    """한 번 실행: 벽시계 시간(wall seconds), 자식 프로세스의 최대 상주 메모리(peak RSS), 실행 기록."""
    command = [sys.executable, str(script), *args, "--out-dir", str(out_dir)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="쉼표로 구분한 장 번호, 예: 01,02 (비우면 전부)")
    parser.add_argument("--data", default="offline", choices=["offline", "auto", "real"],
                        help="각 장에 넘길 --data")
    parser.add_argument("--data-dir", default="", help="각 장에 넘길 --data-dir (비우면 장의 기본값)")
    parser.add_argument("--repeat", type=int, default=1, help="반복 횟수: 시간·메모리는 중앙값")
    parser.add_argument("--extra", default="", help="각 장에 그대로 넘길 추가 플래그, 예: '--epochs 5'")
    options = parser.parse_args()
    if options.repeat < 1:
        parser.error("--repeat 는 1 이상")

    wanted = {n.strip() for n in options.only.split(",") if n.strip()}
    scripts = [p for p in sorted(ROOT.glob("[0-9][0-9]_*.py")) if not wanted or p.name[:2] in wanted]
    if not scripts:
        parser.error(f"--only {options.only}: 해당하는 장이 없습니다")
    args = ["--data", options.data]
    if options.data_dir:
        args += ["--data-dir", options.data_dir]
    args += options.extra.split()

    results = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    machine = machine_description()
    for script in scripts:
        key = f"{script.stem} {' '.join(args)}"
        runs = []
        for attempt in range(1, options.repeat + 1):
            out_dir = ROOT / "outputs" / "benchmarks" / script.stem
            print(f"[{attempt}/{options.repeat}] {script.name} {' '.join(args)} ...", flush=True)
            runs.append(run_once(script, args, out_dir))
            print(f"    {runs[-1]['seconds']:.1f} s, peak {runs[-1]['peak_mb'] or float('nan'):.0f} MB, "
                  f"{runs[-1]['record']['headline']}", flush=True)
        record = runs[-1]["record"]
        peaks = [r["peak_mb"] for r in runs if r["peak_mb"] is not None]
        results[key] = {
            "script": script.name, "args": " ".join(args), "data": record["data"],
            "device": record["device"], "runs": len(runs),
            "wall_seconds_median": round(statistics.median(r["seconds"] for r in runs), 1),
            "wall_seconds_all": [round(r["seconds"], 1) for r in runs],
            "peak_mb_median": round(statistics.median(peaks)) if peaks else None,
            "headline": record["headline"],
            "headline_all": [r["record"]["headline"]["value"] for r in runs],
            "metrics": record["metrics"],
            "timing_all": [r["record"].get("timing", {}) for r in runs],
            "machine": machine, "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        }
        RESULTS_JSON.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    write_markdown(results)
    print(f"\n→ {RESULTS_MD.relative_to(ROOT)}")


def write_markdown(results: dict) -> None:
    machines = {json.dumps(r["machine"], sort_keys=True) for r in results.values()}
    lines = ["# Benchmark results", "",
             "`python benchmarks/run_all.py` 가 만든 파일입니다. 손으로 고치지 마세요.", "",
             "| script | flags | data | device | runs | wall s (median) | peak MB | headline metric |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted(results):
        r = results[key]
        value = r["headline"]["value"]
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {r['script']} | `{r['args']}` | {r['data']} | {r['device']} | {r['runs']} | "
                     f"{r['wall_seconds_median']} | {r['peak_mb_median'] or 'n/a'} | "
                     f"{r['headline']['name']} = {shown} |")
    lines += ["", "## Machine" + ("s" if len(machines) > 1 else ""), ""]
    for machine in sorted(machines):
        m = json.loads(machine)
        lines.append(f"- {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
                     f"{m['memory_gb']} GB RAM, GPU: {m['gpu']}; "
                     f"{m['os']}, Python {m['python']}, torch {m['torch']}")
    lines += ["", "Measured at: " + ", ".join(sorted({r["measured_at"] for r in results.values()})), ""]
    RESULTS_MD.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
