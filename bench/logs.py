"""Benchmark of the log readers: ``python -m bench.logs [--big-rows N]``.

1. Reads real logs with :func:`predictor.logs.read_log` and, as the baseline,
   with a bare ``pandas.read_csv`` of the same file (no validation, no
   canonical table): wall and CPU seconds, rows/s and the ratio ours/baseline.
2. Peak RSS of separate processes reading LCG (188k rows): Python + imports
   only, ``read_log``, streaming ``iter_log`` (chunks dropped as read) and the
   bare pandas baseline.
3. Streams a synthetic SWF of ``--big-rows`` rows (LCG tiled with fresh job
   ids, in a temporary file) through ``iter_log`` to show that its peak RSS
   stays flat as the log grows; ``read_log`` is measured on it too.

Prints a table, writes ``out/bench/logs.json`` and ``out/bench/logs.png``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from predictor.state import PROJECT_ROOT, data_dir

OUT_DIR = PROJECT_ROOT / "out" / "bench"
LOGS = {
    "LANL-CM5": "hpc_swf/LANL-CM5-1994-4.1-cln.swf.gz",
    "LCG": "extra/LCG.swf.gz",
    "MetaCentrum": "hpc_swf/MetaCentrum-wagap-2013-alea.swf.gz",
    "Philly": "gpu_jobs/philly_jobs_pollux.csv",
}

# Each snippet runs in a fresh interpreter and prints its rows; RSS is read after it.
SNIPPETS = {
    "imports only": "import pandas, predictor.logs; rows = 0",
    "read_log": "from predictor.logs import read_log; rows = len(read_log(PATH).jobs)",
    "iter_log (streaming)": (
        "from predictor.logs import iter_log; rows = sum(len(c) for c in iter_log(PATH))"
    ),
    "pandas baseline": "import pandas; rows = len(BASELINE(PATH))",
}
RUNNER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    from bench.logs import baseline_read as BASELINE
    PATH = {path!r}
    t0, c0 = time.perf_counter(), time.process_time()
    {snippet}
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # VmHWM (this process's peak RSS); ru_maxrss would include the parent's, kept over exec.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    rss = int(hwm.split()[1]) / 1024
    print(json.dumps({{"rows": rows, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss}}))
    """
)


def baseline_read(path: str | Path) -> Any:
    """The least a reader must do: pandas' C parser on the raw file, nothing checked."""
    import pandas as pd

    name = str(path)
    if name.endswith(".csv"):
        return pd.read_csv(path)
    return pd.read_csv(path, sep=r"\s+", comment=";", header=None, usecols=range(18))


def timed(fn: Any, *args: Any) -> tuple[Any, float, float]:
    """``fn(*args)`` with its wall and CPU seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def in_subprocess(snippet: str, path: Path) -> dict[str, float]:
    """Run ``snippet`` in a fresh interpreter; its rows, seconds and peak RSS (MiB)."""
    code = RUNNER.format(root=str(PROJECT_ROOT), path=str(path), snippet=snippet)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_big_swf(source: Path, rows: int, target: Path) -> int:
    """Tile ``source``'s data lines into ``target`` with fresh job ids; return bytes written."""
    with gzip.open(source, "rt") as fh:
        body = [line.split(None, 1)[1] for line in fh if line.strip() and line[0] != ";"]
    with target.open("w") as out:
        out.write("; UnixStartTime: 1132444805\n")
        for i in range(rows):
            out.write(f"{i + 1} {body[i % len(body)]}")
    return target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="synthetic SWF rows")
    args = parser.parse_args()
    from predictor.logs import read_log

    console = Console()
    data = data_dir()
    results: dict[str, Any] = {"logs": {}, "rss_lcg": {}, "big": {}}
    read_log(data / LOGS["MetaCentrum"])  # warm-up: one-time import and parser set-up costs
    baseline_read(data / LOGS["MetaCentrum"])
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reading real logs", total=len(LOGS))
        for name, rel in LOGS.items():
            path = data / rel
            result, wall, cpu = timed(read_log, path)
            _, bwall, bcpu = timed(baseline_read, path)
            results["logs"][name] = {
                "rows": len(result.jobs),
                "skipped": result.n_errors,
                "wall_s": wall,
                "cpu_s": cpu,
                "rows_per_s": len(result.jobs) / wall,
                "baseline_wall_s": bwall,
                "baseline_cpu_s": bcpu,
                "ratio_cpu": cpu / bcpu,
            }
            progress.advance(task)
        task = progress.add_task("peak RSS on LCG", total=len(SNIPPETS))
        lcg = data / LOGS["LCG"]
        for label, snippet in SNIPPETS.items():
            results["rss_lcg"][label] = in_subprocess(snippet, lcg)
            progress.advance(task)
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "big.swf"
            progress.add_task(f"writing a {args.big_rows:,}-row SWF", total=None)
            size = write_big_swf(lcg, args.big_rows, big)
            results["big"]["file_mb"] = size / 2**20
            results["big"]["rows"] = args.big_rows
            task = progress.add_task("streaming the big SWF", total=2)
            for label in ("iter_log (streaming)", "read_log"):
                results["big"][label] = in_subprocess(SNIPPETS[label], big)
                progress.advance(task)
    report(console, results)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "logs.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, OUT_DIR / "logs.png")
    console.print(f"wrote {OUT_DIR / 'logs.json'} and {OUT_DIR / 'logs.png'}")


def report(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="read_log vs bare pandas.read_csv (baseline)")
    cols = ("log", "rows", "skipped", "wall s", "CPU s", "rows/CPU-s", "baseline CPU s", "ratio")
    for col in cols:
        table.add_column(col, justify="right")
    for name, r in results["logs"].items():
        table.add_row(
            name,
            f"{r['rows']:,}",
            str(r["skipped"]),
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['rows'] / r['cpu_s']:,.0f}",
            f"{r['baseline_cpu_s']:.2f}",
            f"{r['ratio_cpu']:.2f}x",
        )
    console.print(table)
    table = Table(title="peak RSS, fresh process each (LCG, 188k rows, 20.5 MiB uncompressed)")
    for col in ("what", "rows", "wall s", "CPU s", "peak RSS MiB"):
        table.add_column(col, justify="right")
    for label, r in results["rss_lcg"].items():
        table.add_row(
            label,
            f"{r['rows']:,}",
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    console.print(table)
    big = results["big"]
    table = Table(title=f"synthetic SWF: {big['rows']:,} rows, {big['file_mb']:.0f} MiB")
    for col in ("what", "rows/CPU-s", "CPU s", "peak RSS MiB", "RSS / file size"):
        table.add_column(col, justify="right")
    for label in ("iter_log (streaming)", "read_log"):
        r = big[label]
        table.add_row(
            label,
            f"{r['rows'] / r['cpu_s']:,.0f}",
            f"{r['cpu_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['peak_rss_mb'] / big['file_mb']:.2f}",
        )
    console.print(table)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results["logs"])
    ours = [results["logs"][n]["cpu_s"] for n in names]
    base = [results["logs"][n]["baseline_cpu_s"] for n in names]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], ours, width=0.4, label="read_log")
    left.bar([x + 0.2 for x in xs], base, width=0.4, label="bare pandas.read_csv")
    left.set_xticks(list(xs), names)
    left.set_ylabel("CPU seconds")
    left.set_title("Reading real logs")
    left.legend()
    labels = [f"LCG: {k}" for k in results["rss_lcg"]] + ["big: iter_log", "big: read_log"]
    rss = [r["peak_rss_mb"] for r in results["rss_lcg"].values()] + [
        results["big"]["iter_log (streaming)"]["peak_rss_mb"],
        results["big"]["read_log"]["peak_rss_mb"],
    ]
    right.barh(labels, rss)
    right.set_xlabel("peak RSS, MiB")
    right.set_title(
        f"LCG (188k rows) and a {results['big']['rows'] / 1e6:.1f}M-row SWF "
        f"({results['big']['file_mb']:.0f} MiB)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
