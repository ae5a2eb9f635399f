"""The ``--report DIR`` output: a JSON summary and PNG plots (JCT CDF, queue length, and in
co-location mode the CDF of the slowdown each job suffered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.simulator.engine import SimResult
from predictor.state import atomic_write_json

MAX_PLOT_POINTS = 4000


def write_report(
    directory: str | Path,
    document: dict[str, Any],
    results: dict[str, SimResult],
) -> list[Path]:
    """Write ``report.json``, ``jct_cdf.png`` and ``queue_length.png`` into ``directory``
    (and ``stretch_cdf.png`` in co-location mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json", out / "jct_cdf.png", out / "queue_length.png"]
    atomic_write_json(written[0], document)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results.values():
        jct = np.sort(result.end - result.workload.submit)
        if jct.size == 0:
            continue
        cdf = np.arange(1, jct.size + 1) / jct.size
        step = max(jct.size // MAX_PLOT_POINTS, 1)
        ax.plot(np.maximum(jct[::step], 1.0), cdf[::step], label=_label(result))
    ax.set_xscale("log")
    _finish(fig, ax, written[1], "job completion time (s)", "fraction of jobs",
            f"JCT CDF — {document.get('log', '')}")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results.values():
        times, lengths = result.queue_times, result.queue_lengths
        if times.size == 0:
            continue
        step = max(times.size // MAX_PLOT_POINTS, 1)
        days = (times[::step] - times[0]) / 86400.0
        ax.step(days, lengths[::step], where="post", label=_label(result), linewidth=0.8)
    _finish(fig, ax, written[2], "days since first submission", "jobs waiting",
            f"Queue length — {document.get('log', '')}")

    colocated = [r for r in results.values() if r.held is not None]
    if colocated:
        written.append(out / "stretch_cdf.png")
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for result in colocated:
            assert result.held is not None
            ran = result.workload.run_time > 0
            stretch = np.sort(np.maximum(result.held[ran] / result.workload.run_time[ran], 1.0))
            cdf = np.arange(1, stretch.size + 1) / max(stretch.size, 1)
            step = max(stretch.size // MAX_PLOT_POINTS, 1)
            ax.plot(stretch[::step], cdf[::step], label=_label(result))
        ax.axvline(1 / 0.85, color="grey", linestyle="--", linewidth=0.8, label="15% slowdown")
        _finish(fig, ax, written[3], "stretch = wall time held / solo run time",
                "fraction of jobs", f"Co-location slowdown — {document.get('log', '')}")
    return written


def _finish(fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    """Label, grid and legend ``ax``, save ``fig`` as ``path`` and close it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(result: SimResult) -> str:
    return f"{result.policy}{'+bf' if result.backfill else ''}"
