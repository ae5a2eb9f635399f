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
    ax.set_xlabel("job completion time (s)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(f"JCT CDF — {document.get('log', '')}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(written[1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results.values():
        times, lengths = result.queue_times, result.queue_lengths
        if times.size == 0:
            continue
        step = max(times.size // MAX_PLOT_POINTS, 1)
        days = (times[::step] - times[0]) / 86400.0
        ax.step(days, lengths[::step], where="post", label=_label(result), linewidth=0.8)
    ax.set_xlabel("days since first submission")
    ax.set_ylabel("jobs waiting")
    ax.set_title(f"Queue length — {document.get('log', '')}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(written[2], dpi=110)
    plt.close(fig)

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
        ax.set_xlabel("stretch = wall time held / solo run time")
        ax.set_ylabel("fraction of jobs")
        ax.set_title(f"Co-location slowdown — {document.get('log', '')}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(written[3], dpi=110)
        plt.close(fig)
    return written


def _label(result: SimResult) -> str:
    return f"{result.policy}{'+bf' if result.backfill else ''}"
