"""``foresight evaluate interference``: co-location speed predictors on measured pairs.

Registers itself on ``evaluate_app`` (imported at the bottom of
``predictor/cli/evaluate.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from predictor.cli.evaluate import evaluate_app
from predictor.cli.output import fail
from predictor.interference.evaluation import (
    PairTable,
    evaluate,
    leave_family_out,
    load_gavel,
    load_lucid,
)
from predictor.interference.profiles import ProfileError

_METRICS = ("mae", "mape", "precision_15", "recall_15")


def _pr_curve(
    pred: np.ndarray, actual: np.ndarray, cuts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of "measured speed < 0.85" flagged as ``pred < cut``, per cut."""
    real = actual < 0.85
    flags = pred[None, :] < cuts[:, None]
    tp = (flags & real).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / flags.sum(axis=1), tp / max(int(real.sum()), 1)


def _plot(path: Path, preds: dict[str, np.ndarray], actual: np.ndarray, title: str) -> None:
    """Predicted vs measured speed, one panel per predictor, the 15% cut marked; a last
    panel with each predictor's precision/recall as the decision cut moves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(preds) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    lo = float(min(actual.min(), *(p.min() for p in preds.values()), 0.3))
    for ax, (name, pred) in zip(axes[0], preds.items(), strict=False):
        ax.scatter(actual, pred, s=6, alpha=0.4)
        ax.plot([lo, 1.35], [lo, 1.35], color="grey", lw=1)
        ax.axhline(0.85, color="red", lw=0.8, ls="--")
        ax.axvline(0.85, color="red", lw=0.8, ls="--")
        ax.set(title=f"{name}: MAE {np.mean(np.abs(pred - actual)):.3f}",
               xlabel="measured speed (co-located / solo)", ylabel="predicted speed",
               xlim=(lo, 1.35), ylim=(lo, 1.35))  # fmt: skip
    ax = axes[0][-1]
    for name, pred in preds.items():
        precision, recall = _pr_curve(pred, actual, np.linspace(0.70, 1.0, 121))
        (line,) = ax.plot(recall, precision, lw=1.2, label=name)
        p85, r85 = _pr_curve(pred, actual, np.array([0.85]))
        ax.plot(r85, p85, "o", color=line.get_color(), ms=5)
    ax.axhline(0.80, color="red", lw=0.8, ls="--")
    ax.axvline(0.75, color="red", lw=0.8, ls="--")
    ax.set(title="slowdown > 15%: cut 0.70-1.00 (dot: 0.85)", xlabel="recall",
           ylabel="precision", xlim=(0.3, 1.0), ylim=(0.3, 1.0))  # fmt: skip
    ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load(pairs: Path | None, profiles: Path | None, gavel: Path | None) -> PairTable:
    if gavel is not None:
        return load_gavel(gavel)
    if pairs is None or profiles is None:
        raise ValueError("give --pairs and --profiles (Lucid columns), or --gavel")
    return load_lucid(pairs, profiles)


@evaluate_app.command("interference")
def interference(
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs", exists=True, dir_okay=False, help="Measured pairs (Lucid colocate columns)."
        ),
    ] = None,
    profiles: Annotated[
        Path | None,
        typer.Option(
            "--profiles",
            exists=True,
            dir_okay=False,
            help="Solo profiles (Lucid single-job columns).",
        ),
    ] = None,
    test_pairs: Annotated[
        Path | None,
        typer.Option(
            "--test-pairs",
            exists=True,
            dir_okay=False,
            help="Score these pairs after training on --pairs "
            "(default: cross-validation grouped by model pair).",
        ),
    ] = None,
    test_profiles: Annotated[
        Path | None,
        typer.Option(
            "--test-profiles",
            exists=True,
            dir_okay=False,
            help="Profiles of the --test-pairs jobs (default: --profiles).",
        ),
    ] = None,
    gavel: Annotated[
        Path | None,
        typer.Option(
            "--gavel",
            exists=True,
            dir_okay=False,
            help="Use Gavel's pair throughput JSON instead of --pairs/--profiles.",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 10,
    holdout: Annotated[
        str,
        typer.Option(
            "--holdout",
            help="Without --test-pairs: 'pair' "
            "(CV grouped by model pair) or 'family' (leave one model family "
            "out).",
        ),
    ] = "pair",
    plot: Annotated[
        Path | None,
        typer.Option("--plot", dir_okay=False, help="Write a predicted-vs-measured PNG here."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print issue 8's JSON.")] = False,
) -> None:
    """XGBoost, random forest and the utilisation heuristic on measured co-location pairs."""
    console = Console(stderr=True, quiet=as_json)
    try:
        train = _load(pairs, profiles, gavel)
        test = None
        if test_pairs is not None:
            if gavel is not None:
                raise ValueError(
                    "--test-pairs takes Lucid columns; it does not combine with --gavel"
                )
            test = load_lucid(test_pairs, test_profiles or profiles)  # type: ignore[arg-type]
    except (ValueError, ProfileError, OSError) as exc:
        fail(exc)
    if holdout not in ("pair", "family"):
        fail(f"--holdout must be 'pair' or 'family', not {holdout!r}", code=2)
    if holdout == "family" and (test is not None or gavel is not None):
        fail("--holdout family needs Lucid --pairs and no --test-pairs", code=2)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("cross-validation" if test is None else "train and score",
                            total=folds if test is None else None)  # fmt: skip

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if holdout == "family":
            report, preds, actual = leave_family_out(train, progress=step)
        else:
            report, preds, actual = evaluate(train, test, n_splits=folds, progress=step)
    unit = "model-family pair" if gavel else "model pair"  # Gavel groups by family names
    if plot is not None:
        source = "Gavel" if gavel else "Lucid"
        how = (
            {"pair": f"grouped CV (unseen {unit}s)", "family": "leave one family out"}[holdout]
            if test is None
            else "held-out test pairs"
        )
        _plot(plot, preds, actual, f"{source}, {how}: {report['n_test']} pairs")
    if as_json:
        typer.echo(json.dumps(report))
        return
    how = (
        {"pair": f"{folds}-fold CV grouped by {unit}", "family": "leave one family out"}[holdout]
        if test is None
        else "train/test"
    )
    table = Table(title=f"interference: {how}, {report['n_train']} train / "
                  f"{report['n_test']} test pairs (metrics over both jobs)")  # fmt: skip
    table.add_column("predictor")
    for m in _METRICS:
        table.add_column(m, justify="right")
    for name, metrics in report["predictors"].items():
        table.add_row(name, *("-" if metrics[m] is None else f"{metrics[m]:.3f}" for m in _METRICS))
    Console().print(table)
    if plot is not None:
        Console().print(f"plot: {plot}")
