"""Evaluating interference predictors on measured pairs: Lucid and Gavel loaders, metrics,
cross-validation grouped by model pair (scores are for pairs the model never saw).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from predictor.interference.profiles import ProfileError, parse_profile
from predictor.models.interference import BASE_FIELDS, KINDS, InterferenceModel, Kind

#: A job slower than ``1 - SLOWDOWN`` of its solo speed counts as badly slowed down.
SLOWDOWN = 0.15
GAVEL_FIELDS: tuple[str, ...] = ("batch_size", "gpu_speedup", "solo_throughput")
GAVEL_GPUS: tuple[str, ...] = ("k80", "p100", "v100")
_LUCID_KEY = ("model", "dataset", "batchsize", "amp")


@dataclass(frozen=True)
class PairTable:
    """Measured pairs: profiles of both sides, each side's speed, and the model-pair group."""

    a: pd.DataFrame
    b: pd.DataFrame
    speed_a: np.ndarray
    speed_b: np.ndarray
    group: np.ndarray
    fields: tuple[str, ...] = BASE_FIELDS

    def __len__(self) -> int:
        return len(self.speed_a)

    def take(self, idx: np.ndarray) -> PairTable:
        """The pairs at positions ``idx``."""
        return PairTable(self.a.iloc[idx].reset_index(drop=True),
                         self.b.iloc[idx].reset_index(drop=True), self.speed_a[idx],
                         self.speed_b[idx], self.group[idx], self.fields)  # fmt: skip


def _pair_group(m1: pd.Series, m2: pd.Series) -> np.ndarray:
    return np.array(["|".join(sorted((x, y))) for x, y in zip(m1, m2, strict=True)])


def load_lucid_profiles(path: Path | str) -> pd.DataFrame:
    """Lucid solo profiles (``model,dataset,batchsize,amp,...,gpu_util,gmem_util,gmem``), validated.

    Returns them indexed by (model, dataset, batchsize, amp) with profile field names;
    repeated configurations are averaged.
    """
    raw = pd.read_csv(path)
    missing = {*_LUCID_KEY, "gpu_util"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: profiles lack column(s): {', '.join(sorted(missing))}")
    rows = []
    for i, r in enumerate(raw.to_dict("records")):
        data = {"gpu_util": r["gpu_util"], "gmem_util": r.get("gmem_util"),
                "gmem_mb": r.get("gmem"), "batch_size": r["batchsize"],
                "amp": bool(r["amp"]) if pd.notna(r["amp"]) else None,
                "model_family": str(r["model"])}  # fmt: skip
        data = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}
        try:
            rows.append(parse_profile(data).model_dump())
        except ProfileError as exc:
            raise ProfileError(f"{path}: line {i + 2}: {exc}") from None
    out = pd.DataFrame(rows)
    out.index = pd.MultiIndex.from_frame(
        raw[list(_LUCID_KEY)].astype({"batchsize": int, "amp": int})
    )
    if out.index.duplicated().any():  # repeated measurements of one configuration: average
        numeric = out.drop(columns=["model_family", "amp"]).groupby(level=[0, 1, 2, 3]).mean()
        firsts = out[["model_family", "amp"]].groupby(level=[0, 1, 2, 3]).first()
        out = numeric.join(firsts)
    return out


def lucid_side_keys(pairs: pd.DataFrame, side: int) -> list[tuple[Any, Any, int, int]]:
    """The solo-profile key (model, dataset, batch size, AMP) of side ``side`` (1 or 2) of
    every Lucid pair row, as the profiles' index holds it."""
    cols = [pairs[f"{k}{side}"] for k in _LUCID_KEY]
    return list(zip(cols[0], cols[1], cols[2].astype(int), cols[3].astype(int), strict=True))


def load_lucid(pairs_path: Path | str, profiles_path: Path | str) -> PairTable:
    """Lucid measured pairs joined to their solo profiles (every pair side must have one)."""
    profiles = load_lucid_profiles(profiles_path)
    pairs = pd.read_csv(pairs_path)
    need = {f"{k}{i}" for k in (*_LUCID_KEY, "speed") for i in (1, 2)}
    missing = need - set(pairs.columns)
    if missing:
        raise ValueError(f"{pairs_path}: pairs lack column(s): {', '.join(sorted(missing))}")
    sides = []
    for i in (1, 2):
        keys = lucid_side_keys(pairs, i)
        absent = [k for k in keys if k not in profiles.index]
        if absent:
            raise ValueError(f"{pairs_path}: {len(absent)} pair side(s) have no solo profile in "
                             f"{profiles_path}, e.g. {absent[0]}")  # fmt: skip
        sides.append(profiles.loc[keys].reset_index(drop=True))
    speeds = [pd.to_numeric(pairs[f"speed{i}"], errors="coerce").to_numpy() for i in (1, 2)]
    for i, s in enumerate(speeds, start=1):
        bad = np.flatnonzero(~np.isfinite(s) | (s < 0))
        if bad.size:
            raise ValueError(f"{pairs_path}: line {bad[0] + 2}: speed{i} must be a number >= 0")
    return PairTable(sides[0], sides[1], speeds[0], speeds[1],
                     _pair_group(pairs["model1"], pairs["model2"]))  # fmt: skip


_GAVEL_JOB = re.compile(r"^(?P<family>.+?)(?: \(batch size (?P<bs>\d+)\))?$")


def load_gavel(path: Path | str, gpus: Sequence[str] = GAVEL_GPUS) -> PairTable:
    """Gavel's measured single-GPU pair throughputs as relative speeds, on the given GPU types.

    Gavel has no utilisation profiles; each job's profile is its batch size, its
    solo throughput on this GPU and that throughput over its K80 one (how
    compute-bound it is). Pairs that could not run together (throughput 0) and
    mirrored duplicates are dropped.
    """
    data = json.loads(Path(path).read_text())
    k80 = {k: v["null"] for k, v in data.get("k80", {}).items()}
    rows: list[dict[str, Any]] = []
    for gpu in gpus:
        if gpu not in data:
            raise ValueError(f"{path}: no GPU type {gpu!r}; has {', '.join(data)}")
        table = data[gpu]
        for job_a, entry in table.items():
            name_a, scale_a = ast.literal_eval(job_a)
            if scale_a != 1:
                continue
            for job_b, tput in entry.items():
                if job_b == "null" or job_b < job_a:
                    continue
                name_b, scale_b = ast.literal_eval(job_b)
                if scale_b != 1 or not tput or min(tput) <= 0 or job_b not in table:
                    continue
                rows.append({"gpu": gpu, "a": name_a, "b": name_b,
                             "solo_a": entry["null"], "solo_b": table[job_b]["null"],
                             "k80_a": k80.get(job_a, math.nan), "k80_b": k80.get(job_b, math.nan),
                             "speed_a": tput[0] / entry["null"],
                             "speed_b": tput[1] / table[job_b]["null"]})  # fmt: skip
    if not rows:
        raise ValueError(f"{path}: no usable single-GPU pairs")
    df = pd.DataFrame(rows)

    def side(s: str) -> tuple[pd.DataFrame, pd.Series]:
        parsed = df[s].str.extract(_GAVEL_JOB)
        prof = pd.DataFrame({
            "batch_size": pd.to_numeric(parsed["bs"], errors="coerce"),
            "gpu_speedup": df[f"solo_{s}"] / df[f"k80_{s}"].where(df[f"k80_{s}"] > 0),
            "solo_throughput": df[f"solo_{s}"],
        })  # fmt: skip
        return prof, parsed["family"]

    (pa, fa), (pb, fb) = side("a"), side("b")
    return PairTable(pa, pb, df["speed_a"].to_numpy(), df["speed_b"].to_numpy(),
                     _pair_group(fa, fb), GAVEL_FIELDS)  # fmt: skip


def interference_metrics(
    predicted: np.ndarray, actual: np.ndarray, slowdown: float = SLOWDOWN
) -> dict[str, float | None]:
    """MAE, MAPE, and precision/recall of "slowdown worse than ``slowdown``" (speed < 1 - it).

    Precision is None when nothing is predicted slowed down, recall when nothing is.
    """
    p, a = np.asarray(predicted, float), np.asarray(actual, float)
    if p.shape != a.shape or a.size == 0:
        raise ValueError(f"need equal, non-empty shapes, got {p.shape} and {a.shape}")
    cut = 1.0 - slowdown
    pred_bad, real_bad = p < cut, a < cut
    tp = int(np.sum(pred_bad & real_bad))
    positive = a > 0
    return {
        "mae": float(np.mean(np.abs(p - a))),
        "mape": float(np.mean(np.abs(p[positive] - a[positive]) / a[positive])),
        "precision_15": tp / int(pred_bad.sum()) if pred_bad.any() else None,
        "recall_15": tp / int(real_bad.sum()) if real_bad.any() else None,
    }


def _kinds_for(fields: Sequence[str], kinds: Sequence[Kind]) -> list[Kind]:
    return [k for k in kinds if k != "heuristic" or "gpu_util" in fields]


def _fit_predict(kind: Kind, train: PairTable, test: PairTable) -> np.ndarray:
    model = InterferenceModel(kind, fields=train.fields)
    model.fit(train.a, train.b, train.speed_a, train.speed_b)
    speed_a, speed_b = model.predict_pairs(test.a, test.b)
    return np.concatenate([speed_a, speed_b])


def grouped_cv_predictions(
    table: PairTable,
    kinds: Sequence[Kind] = KINDS,
    n_splits: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of each kind, folds grouped by model pair."""
    n_groups = len(np.unique(table.group))
    if n_groups < 2:
        raise ValueError("grouped cross-validation needs at least two model pairs")
    folds = list(
        GroupKFold(n_splits=min(n_splits, n_groups)).split(table.speed_a, groups=table.group)
    )
    kinds = _kinds_for(table.fields, kinds)
    n = len(table)
    out = {k: np.full(2 * n, np.nan) for k in kinds}
    for i, (tr, te) in enumerate(folds):
        train, test = table.take(tr), table.take(te)
        for k in kinds:
            out[k][np.concatenate([te, n + te])] = _fit_predict(k, train, test)
        if progress:
            progress(i + 1, len(folds))
    return out


def evaluate(
    train: PairTable,
    test: PairTable | None = None,
    kinds: Sequence[Kind] = KINDS,
    n_splits: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """The report ``{"n_train", "n_test", "predictors": {kind: metrics}}`` (counts are pairs;
    metrics are over both jobs of each pair), the predictions and the measured speeds.

    Without ``test``: grouped cross-validation on ``train``. With it: fit on
    ``train``, score ``test``.
    """
    if test is None:
        preds = grouped_cv_predictions(train, kinds, n_splits, progress)
        actual, n_test = np.concatenate([train.speed_a, train.speed_b]), len(train)
    else:
        if test.fields != train.fields:
            raise ValueError("train and test pairs carry different profile fields")
        preds = {k: _fit_predict(k, train, test) for k in _kinds_for(train.fields, kinds)}
        actual, n_test = np.concatenate([test.speed_a, test.speed_b]), len(test)
    report = {
        "n_train": len(train),
        "n_test": n_test,
        "predictors": {k: interference_metrics(p, actual) for k, p in preds.items()},
    }
    return report, preds, actual


def leave_family_out(
    table: PairTable,
    kinds: Sequence[Kind] = KINDS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Unseen model *families*: for each family, train on the pairs without it and score
    both jobs of every pair with it; metrics pool all held-out predictions.

    Needs ``model_family`` in the profiles (Lucid has it). ``n_test`` counts scored
    pairs (a pair of two held-out families is scored twice, once per family).
    """
    if "model_family" not in table.a.columns:
        raise ValueError("leave-family-out needs model_family in the profiles")
    fam_a, fam_b = table.a["model_family"].to_numpy(), table.b["model_family"].to_numpy()
    families = sorted(set(fam_a) | set(fam_b))
    kinds = _kinds_for(table.fields, kinds)
    preds: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    actual: list[np.ndarray] = []
    n_test = 0
    for i, fam in enumerate(families):
        held = (fam_a == fam) | (fam_b == fam)
        if held.all() or not held.any():
            continue
        train, test = table.take(np.flatnonzero(~held)), table.take(np.flatnonzero(held))
        for k in kinds:
            preds[k].append(_fit_predict(k, train, test))
        actual.append(np.concatenate([test.speed_a, test.speed_b]))
        n_test += len(test)
        if progress:
            progress(i + 1, len(families))
    y = np.concatenate(actual)
    joined = {k: np.concatenate(v) for k, v in preds.items()}
    report = {
        "n_train": len(table),
        "n_test": n_test,
        "predictors": {k: interference_metrics(p, y) for k, p in joined.items()},
    }
    return report, joined, y
