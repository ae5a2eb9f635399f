"""``foresight simulate``: replay a job log under each queue policy and compare them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from policies.base import POLICY_NAMES, get_policy
from policies.simulator.engine import SimResult
from policies.simulator.metrics import json_entry, summary
from policies.simulator.replay import (
    OnlineSpec,
    Replay,
    SiblingSpec,
    prepare_replay,
    run_policies,
)
from predictor.cli.output import fail
from predictor.logs import LogFormatError, read_log

PREDICTION_SOURCES = ("causal", "online", "oracle")


def simulate(
    log: Annotated[
        Path, typer.Option("--log", exists=True, dir_okay=False, help="The job log to replay.")
    ],
    policies: Annotated[
        str, typer.Option("--policies", help=f"Comma-separated: {', '.join(POLICY_NAMES)}.")
    ] = "fifo,sjf,qssf,las,multifactor",
    cluster_config: Annotated[
        str | None,
        typer.Option(
            "--cluster-config",
            help="A shipped config name (philly) or a JSON file; "
            "default: the SWF header, else the log's peak usage.",
        ),
    ] = None,
    target_load: Annotated[
        float | None,
        typer.Option(
            "--target-load",
            min=0.01,
            help="Shrink each VC to the fewest nodes keeping its "
            "offered load in the window <= L (never below its largest job).",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First submit date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last submit date (inclusive).")] = None,
    backfill: Annotated[
        bool, typer.Option("--backfill/--no-backfill", help="EASY backfilling (Slurm's default).")
    ] = True,
    predictions: Annotated[
        str,
        typer.Option(
            "--predictions",
            help="QSSF's run times: causal (the product's causal predictions, made "
            "before the replay), online (predicted inside the replay from its own "
            "history, model retrained weekly) or oracle (true run times, for reference).",
        ),
    ] = "causal",
    rescore_interval: Annotated[
        float | None,
        typer.Option(
            "--rescore-interval",
            min=0.001,
            help="Minutes between re-predictions of every waiting job (implies "
            "--predictions online; default: predict once, at submission).",
        ),
    ] = None,
    rescore_features: Annotated[
        str,
        typer.Option(
            "--rescore-features",
            help="At a re-scoring: 'now' rebuilds each waiting job's features from the "
            "history as it stands (what the priority daemon does); 'submit' re-predicts "
            "its submit-time features with the current model.",
        ),
    ] = "now",
    siblings: Annotated[
        bool,
        typer.Option(
            "--siblings/--no-siblings",
            help="With --predictions causal: when a job ends, re-predict its waiting burst "
            "siblings (same user and shape, submitted seconds apart) from the siblings' run "
            "times, as the priority daemon does live (docs/simulator.md).",
        ),
    ] = True,
    colocation: Annotated[
        bool,
        typer.Option(
            "--colocation/--no-colocation",
            help="Jobs sharing a node slow down by the Lucid pair speeds (docs/simulator.md).",
        ),
    ] = False,
    hints: Annotated[
        bool,
        typer.Option(
            "--hints/--no-hints",
            help="With --colocation: interference-aware placement (avoid nodes the "
            "interference model predicts worse than 15% slowdown).",
        ),
    ] = False,
    qssf_max_wait: Annotated[
        float,
        typer.Option(
            "--qssf-max-wait",
            min=0.001,
            help="QSSF ageing: days after which a waiting job is promoted (inf: never).",
        ),
    ] = 7.0,
    fmt: Annotated[str, typer.Option("--format", help="Log format (auto-detected).")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.json and PNG plots here.")
    ] = None,
) -> None:
    """Replay LOG under each policy; print JCT, queueing delay, slowdown and utilisation."""
    console = Console(stderr=True)
    names = [n.strip().lower() for n in policies.split(",") if n.strip()]
    try:
        if not names:
            raise ValueError(f"no policy given; known policies: {', '.join(POLICY_NAMES)}")
        params = {"qssf": {"max_wait": qssf_max_wait * 86400.0}}
        for name in names:
            get_policy(name, **params.get(name, {}))
        if predictions not in PREDICTION_SOURCES:
            raise ValueError(f"--predictions must be one of {', '.join(PREDICTION_SOURCES)}")
        if rescore_interval is not None:
            if predictions == "oracle":
                raise ValueError("--rescore-interval needs --predictions online (not oracle)")
            predictions = "online"
        if rescore_features not in ("now", "submit"):
            raise ValueError("--rescore-features must be 'now' or 'submit'")
        if hints and not colocation:
            raise ValueError("--hints needs --colocation")
        result = read_log(log, fmt)
        jobs = result.jobs
        online = None
        if predictions == "online":
            minutes = rescore_interval if rescore_interval is not None else float("inf")
            online = OnlineSpec(
                rescore_interval=minutes * 60.0, refeaturize=rescore_features == "now"
            )
        needs = "qssf" in names and online is None
        pred = _predictions(jobs, predictions, console) if needs else None
        replay = prepare_replay(
            jobs,
            log=str(log),
            log_format=result.format,
            cluster_config=cluster_config,
            target_load=target_load,
            start=start,
            end=end,
            predictions=pred,
        )
    except (ValueError, LogFormatError) as exc:
        fail(exc, code=2)
    if len(replay.workload) == 0:
        fail("no job of the log can be replayed in this window/cluster", code=2)
    _print_setup(console, replay, result.n_errors)
    colo = None
    if colocation:
        from policies.simulator.colocation import lucid_colocation

        try:
            colo = lucid_colocation(replay.workload.jobs, hints=hints)
        except (OSError, ValueError) as exc:
            fail(exc, code=2)
    sibling_spec = SiblingSpec() if siblings and predictions == "causal" else None
    results = _run_with_progress(
        replay, names, backfill, console, params, online, colo, sibling_spec
    )
    stats = {name: summary(r) for name, r in results.items()}
    document: dict[str, Any] = {
        "log": str(log),
        "policies": {name: json_entry(s) for name, s in stats.items()},
    }
    if as_json:
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        _print_tables(stats, backfill)
    if report is not None:
        from policies.simulator.report import write_report

        full = {
            **document,
            "details": stats,
            "backfill": backfill,
            "predictions": predictions,
            "rescore_interval_min": rescore_interval,
            "rescore_features": rescore_features,
            "siblings": sibling_spec is not None,
            "colocation": {"hints": hints} if colocation else None,
            "qssf_max_wait_days": qssf_max_wait,
            "cluster": replay.cluster.describe(),
            "window": list(replay.window),
            "dropped": replay.workload.dropped | {"out_of_window": replay.out_of_window},
            "oversize_job_ids": replay.workload.oversize_ids,
            "notes": replay.notes,
        }
        for path in write_report(report, full, results):
            console.print(f"wrote {path}")


def _predictions(jobs: pd.DataFrame, source: str, console: Console) -> pd.Series:
    """Run-time predictions for every job of the log (before windowing: history counts)."""
    if source == "oracle":
        return jobs["run_time"]
    from predictor.models.duration import causal_predictions

    with _progress(console, "causal predictions (retrains)") as bar:
        task = bar.add_task("fit", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        frame = causal_predictions(jobs, progress=tick)
    return frame["runtime_s"]


def _progress(console: Console, label: str) -> Progress:
    """A transient rich progress bar: label, bar, done/total, elapsed."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_setup(console: Console, replay: Replay, bad_lines: int) -> None:
    w = replay.workload
    console.print(f"[bold]{replay.log}[/bold]: {len(w)} jobs on {replay.cluster.describe()}")
    for note in replay.notes:
        console.print(f"  {note}")
    d = w.dropped
    console.print(
        f"  skipped: {d['oversize']} larger than their cluster/VC, {d['other_vc']} of VCs not "
        f"in the cluster, {d['no_runtime']} without run time, {replay.out_of_window} outside "
        f"the window, {bad_lines} unreadable lines"
    )
    if w.oversize_ids:
        shown = ", ".join(w.oversize_ids)
        console.print(f"  oversize job ids (first {len(w.oversize_ids)}): {shown}")


def _run_with_progress(
    replay: Replay,
    names: list[str],
    backfill: bool,
    console: Console,
    params: dict[str, dict[str, Any]],
    online: OnlineSpec | None,
    colocation: Any,
    siblings: SiblingSpec | None,
) -> dict[str, SimResult]:
    with _progress(console, "{task.description:>12}") as bar:
        tasks = {n: bar.add_task(n, total=len(replay.workload)) for n in names}

        def tick(name: str, done: int) -> None:
            bar.update(tasks[name], completed=done)

        return run_policies(replay, names, backfill=backfill, on_progress=tick, params=params,
                            online=online, colocation=colocation, siblings=siblings)  # fmt: skip


def _fmt(seconds: float) -> str:
    return f"{seconds:,.0f}"


def _print_tables(stats: dict[str, dict[str, Any]], backfill: bool) -> None:
    console = Console()
    table = Table(title=f"Replay per policy ({'EASY backfill' if backfill else 'no backfill'}; s)")
    for col in (
        "policy", "jobs", "avg JCT", "p50 JCT", "p95 JCT", "p99 JCT", "avg queue",
        "p99 queue", "avg bsld", "makespan", "GPU util", "CPU util",
    ):  # fmt: skip
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, s in stats.items():
        table.add_row(
            name, str(s["jobs"]), _fmt(s["avg_jct"]), _fmt(s["p50_jct"]), _fmt(s["p95_jct"]),
            _fmt(s["p99_jct"]), _fmt(s["avg_queue"]), _fmt(s["p99_queue"]),
            f"{s['avg_bsld']:,.2f}", _fmt(s["makespan"]), f"{s['gpu_util']:.1%}",
            f"{s['cpu_util']:.1%}",
        )  # fmt: skip
    console.print(table)
    if any("avg_stretch" in s for s in stats.values()):
        colo = Table(title="Co-location: slowdown suffered (wall time held / solo run time)")
        for col in ("policy", "avg stretch", "GPU-time-weighted stretch", "jobs slowed > 15%"):
            colo.add_column(col, justify="left" if col == "policy" else "right")
        for name, s in stats.items():
            colo.add_row(name, f"{s['avg_stretch']:.3f}", f"{s['gpu_stretch']:.3f}",
                         f"{s['slowed_15']:.1%}")  # fmt: skip
        console.print(colo)
    if not any("by_vc" in s for s in stats.values()):
        return
    vc_table = Table(title="Per virtual cluster (s)")
    for col in ("vc", "policy", "jobs", "avg JCT", "p99 JCT", "avg queue", "p99 queue",
                "avg bsld", "util"):  # fmt: skip
        vc_table.add_column(col, justify="left" if col in ("vc", "policy") else "right")
    vcs = next(iter(stats.values()))["by_vc"]
    for vc in vcs:
        for name, s in stats.items():
            v = s["by_vc"][vc]
            if not v["jobs"]:
                continue
            vc_table.add_row(
                vc, name, str(v["jobs"]), _fmt(v["avg_jct"]), _fmt(v["p99_jct"]),
                _fmt(v["avg_queue"]), _fmt(v["p99_queue"]), f"{v['avg_bsld']:,.2f}",
                f"{v['utilization']:.1%}",
            )  # fmt: skip
        vc_table.add_section()
    console.print(vc_table)
