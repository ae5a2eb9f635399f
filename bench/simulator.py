"""Benchmark of the trace-driven simulator: ``python -m bench.simulator [--jobs N]``.

1. Replays the first ``--jobs`` (default 100,000) jobs of LANL-CM5 (1,024
   processors, from its SWF header) under every policy with EASY backfilling
   and, as the baseline, FIFO without backfilling: wall and CPU seconds,
   jobs/s and the CPU-time ratio to the baseline (CPU time, because wall time
   on a shared machine measures the neighbours as much as the simulator).
   QSSF gets oracle-with-noise predictions (true run time x lognormal(0, 1))
   so the timing is the simulator's alone, not the model's.
2. Peak traced memory (``tracemalloc``) of building the workload and replaying
   FIFO+backfill at 1/8, 1/4 and 1/2 of the jobs, to show it grows linearly.
3. With ``--modes``: the optional modes on the Philly replay (68,503 jobs,
   ``--cluster-config philly --target-load 0.7``), CPU time against FIFO+EASY
   on the same workload: QSSF with causal predictions (made beforehand, not
   timed), QSSF with online predictions (``ReplayPredictor``, weekly retrains
   included), the same re-scoring every 30 simulated minutes, and FIFO+EASY in
   co-location mode without and with hints (the pair-speed set-up not timed).

Prints a table; writes ``out/bench/simulator.json`` and ``out/bench/simulator.png``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from policies import POLICY_NAMES, get_policy
from policies.simulator.cluster import from_swf_header, read_swf_header
from policies.simulator.engine import simulate
from policies.simulator.metrics import summary
from policies.simulator.replay import oracle_with_noise
from policies.simulator.workload import build_workload
from predictor.logs import read_log
from predictor.state import PROJECT_ROOT, data_dir

OUT_DIR = PROJECT_ROOT / "out" / "bench"
LOG = "hpc_swf/LANL-CM5-1994-4.1-cln.swf.gz"
PHILLY = "gpu_jobs/philly_jobs_pollux.csv"
TARGET_S = 60.0


def _load(n_jobs: int) -> tuple[pd.DataFrame, Any]:
    path = data_dir() / LOG
    jobs = read_log(path).jobs.sort_values("submit_time", kind="stable").head(n_jobs)
    cluster = from_swf_header(read_swf_header(path), name="LANL-CM5")
    return jobs.reset_index(drop=True), cluster


def _time_run(workload: Any, cluster: Any, name: str, backfill: bool, progress: Any) -> dict:
    task = progress.add_task(f"{name}{'+bf' if backfill else ''}", total=len(workload))
    wall, cpu = time.perf_counter(), time.process_time()
    result = simulate(
        workload,
        cluster,
        get_policy(name),
        backfill=backfill,
        progress=lambda done: progress.update(task, completed=done),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = summary(result)
    progress.console.print(
        f"{name}{'+bf' if backfill else ''}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"{result.passes:,} passes"
    )
    return {
        "policy": name,
        "backfill": backfill,
        "jobs": len(workload),
        "wall_s": wall,
        "cpu_s": cpu,
        "jobs_per_s": len(workload) / wall,
        "passes": result.passes,
        "avg_jct": stats["avg_jct"],
    }


def _memory(jobs: pd.DataFrame, cluster: Any, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        part = jobs.head(n)
        pred = oracle_with_noise(part["run_time"], 1.0)
        tracemalloc.start()
        workload = build_workload(part, cluster, pred)
        simulate(workload, cluster, get_policy("fifo"), backfill=True)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"jobs": n, "peak_bytes": peak, "bytes_per_job": peak / n})
    return rows


def _modes(console: Console) -> list[dict]:
    """CPU seconds of the optional modes on the Philly replay (see the module docstring)."""
    from policies.simulator.colocation import lucid_colocation
    from policies.simulator.online import ReplayPredictor
    from policies.simulator.replay import prepare_replay
    from predictor.models.duration import causal_predictions

    jobs = read_log(data_dir() / PHILLY).jobs
    replay = prepare_replay(
        jobs,
        log=PHILLY,
        log_format="philly",
        cluster_config="philly",
        target_load=0.7,
        predictions=causal_predictions(jobs)["runtime_s"],
    )
    w, cluster = replay.workload, replay.cluster
    colos = {hints: lucid_colocation(w.jobs, hints=hints) for hints in (False, True)}

    def online(minutes: float) -> ReplayPredictor:
        return ReplayPredictor(w.jobs, replay.prior, interval=minutes * 60.0)

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("fifo+bf", "fifo", {}),
        ("qssf+bf causal", "qssf", {}),
        ("qssf+bf online", "qssf", {"predictor": lambda: online(float("inf"))}),
        ("qssf+bf online rescore 30 min", "qssf", {"predictor": lambda: online(30.0)}),
        ("fifo+bf colocation", "fifo", {"colocation": lambda: colos[False]}),
        ("fifo+bf colocation hints", "fifo", {"colocation": lambda: colos[True]}),
    ]
    rows = []
    for label, name, extra in cases:
        kwargs = {k: make() for k, make in extra.items()}
        wall, cpu = time.perf_counter(), time.process_time()
        result = simulate(w, cluster, get_policy(name), **kwargs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows.append({"mode": label, "jobs": len(w), "wall_s": wall, "cpu_s": cpu,
                     "avg_jct": summary(result)["avg_jct"]})  # fmt: skip
        console.print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU")
    table = Table(title=f"Optional modes on Philly, {len(w):,} jobs (CPU vs fifo+bf)")
    for col in ("mode", "wall s", "CPU s", "CPU vs fifo+bf", "avg JCT s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for row in rows:
        row["ratio_vs_fifo_bf"] = row["cpu_s"] / rows[0]["cpu_s"]
        table.add_row(row["mode"], f"{row['wall_s']:.1f}", f"{row['cpu_s']:.1f}",
                      f"{row['ratio_vs_fifo_bf']:.2f}x", f"{row['avg_jct']:,.0f}")  # fmt: skip
    console.print(table)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--policies", default=",".join(POLICY_NAMES))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--modes", action="store_true", help="also time the optional modes")
    args = parser.parse_args()
    console = Console()
    jobs, cluster = _load(args.jobs)
    workload = build_workload(jobs, cluster, oracle_with_noise(jobs["run_time"], 1.0))
    console.print(
        f"LANL-CM5: {len(workload)} jobs on {cluster.describe()} (dropped {workload.dropped})"
    )
    runs = []
    with Progress(
        TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        runs.append(_time_run(workload, cluster, "fifo", False, progress))
        for name in [n.strip() for n in args.policies.split(",") if n.strip()]:
            runs.append(_time_run(workload, cluster, name, True, progress))
    base = runs[0]["cpu_s"]  # CPU time: robust on a shared machine; wall shown beside it
    table = Table(title=f"Simulator speed, {len(workload):,} jobs (target < {TARGET_S:.0f} s each)")
    for col in ("policy", "wall s", "CPU s", "jobs/s", "passes", "CPU vs FIFO no-bf", "avg JCT s"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for run in runs:
        run["ratio_vs_fifo_nobf"] = run["cpu_s"] / base
        table.add_row(
            f"{run['policy']}{'+bf' if run['backfill'] else ''}",
            f"{run['wall_s']:.1f}", f"{run['cpu_s']:.1f}", f"{run['jobs_per_s']:,.0f}",
            f"{run['passes']:,}", f"{run['ratio_vs_fifo_nobf']:.2f}x", f"{run['avg_jct']:,.0f}",
        )  # fmt: skip
    console.print(table)
    memory: list[dict] = []
    if not args.skip_memory:
        sizes = [max(len(jobs) // 8, 1), max(len(jobs) // 4, 1), max(len(jobs) // 2, 1)]
        memory = _memory(jobs, cluster, sizes)
        for row in memory:
            console.print(
                f"memory: {row['jobs']:>7,} jobs -> peak {row['peak_bytes'] / 2**20:7.1f} MiB "
                f"({row['bytes_per_job']:.0f} B/job)"
            )
    modes = _modes(console) if args.modes else []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"log": LOG, "runs": runs, "memory": memory, "target_s": TARGET_S, "modes": modes}
    (OUT_DIR / "simulator.json").write_text(json.dumps(doc, indent=2) + "\n")
    _plot(runs, memory)
    console.print(f"wrote {OUT_DIR / 'simulator.json'} and {OUT_DIR / 'simulator.png'}")


def _plot(runs: list[dict], memory: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"{r['policy']}{'+bf' if r['backfill'] else ''}" for r in runs]
    axes[0].bar(labels, [r["wall_s"] for r in runs], color="tab:blue")
    axes[0].axhline(TARGET_S, color="tab:red", linestyle="--", label=f"target {TARGET_S:.0f} s")
    axes[0].set_ylabel(f"wall seconds for {runs[0]['jobs']:,} jobs")
    axes[0].legend()
    axes[0].tick_params(axis="x", rotation=30)
    if memory:
        axes[1].plot(
            [m["jobs"] for m in memory], [m["peak_bytes"] / 2**20 for m in memory], marker="o"
        )
        axes[1].set_xlabel("jobs")
        axes[1].set_ylabel("peak traced MiB (fifo+bf)")
        axes[1].set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(OUT_DIR / "simulator.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
