"""The :class:`~predictor.history.stats.KeyStats` statistics of a whole log at once.

An offline sweep knows every event in advance: which ended job is folded
into the history before which submission. Given that order, each bucket's
state after each of its folds is a grouped prefix computation (counts, sums,
the last five, an exponential moving average, a running maximum), and the
state a submission sees is the one after the bucket's last fold before it.
This module computes those with numpy/pandas, in a handful of passes over
arrays, instead of one Python call per event and bucket; the results equal
``KeyStats.features`` up to floating-point rounding (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictor.history.stats import EWMA_ALPHA, RECENT_K, STAT_FEATURES

_N_STATS = len(STAT_FEATURES)


@dataclass
class Events:
    """The event order of a sweep over ``n`` jobs (indices are rows of the job frame).

    ``queries[p]`` is the job submitted at step ``p`` (its features are read,
    then its submission counted if ``counted_submit[p]``); ``folds`` are the
    ended jobs folded into the history, in order, ``fold_step[k]`` being the
    step before whose query fold ``k`` happens (non-decreasing).
    """

    queries: np.ndarray
    counted_submit: np.ndarray
    folds: np.ndarray
    fold_step: np.ndarray


@dataclass
class JobValues:
    """Per job (rows of the frame) the values the statistics fold in."""

    now: np.ndarray  # submit time (the query's clock)
    log_run: np.ndarray  # log(max(run, 1))
    run: np.ndarray
    log_ratio: np.ndarray  # log_run - log(max(limit, 1)) where limit > 0, else NaN
    end: np.ndarray


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Boolean: the element is the first of its (contiguous) group."""
    start = np.ones(group.size, dtype=bool)
    start[1:] = group[1:] != group[:-1]
    return start


def _last_flagged(flag: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per element, the index of the latest flagged element at or before it in its group (-1)."""
    idx = np.where(flag, np.arange(flag.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    first = np.maximum.accumulate(np.where(start, np.arange(flag.size), 0)) if idx.size else idx
    return np.where(last >= first, last, -1)


def _ewma(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Grouped ``e = a*x + (1-a)*e_prev`` (``e = x`` at a group's start): a parallel scan."""
    mult = np.where(start, 0.0, 1.0 - EWMA_ALPHA)
    add = np.where(start, values, EWMA_ALPHA * values)
    step = 1
    while step < values.size and mult.any():
        add[step:] = mult[step:] * add[:-step] + add[step:]
        mult[step:] = mult[step:] * mult[:-step]
        mult[:step] = 0.0
        step *= 2
    return add


def _median_recent(values: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Median of the last ``RECENT_K`` values of each element's group (itself included)."""
    m = values.size
    window = np.full((m, RECENT_K), np.nan)
    for lag in range(RECENT_K):
        ok = rank >= lag
        window[ok, lag] = values[np.nonzero(ok)[0] - lag]
    window.sort(axis=1)  # NaN last
    k = np.minimum(rank + 1, RECENT_K)
    rows = np.arange(m)
    upper = window[rows, k // 2]
    lower = window[rows, np.maximum(k // 2 - 1, 0)]
    return np.where(k % 2 == 1, upper, 0.5 * (lower + upper))


def bucket_features(
    codes: np.ndarray, events: Events, jobs: JobValues
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``KeyStats.features`` of each query's bucket of one kind, at the query's step.

    ``codes`` is the bucket id of every job (-1: the job has no key of this
    kind). Returns ``(features (n_queries, len(STAT_FEATURES)), mean_run,
    last2_mean)``, the last two being the Helios and Tsafrir look-ups (NaN
    without ended history), all aligned with ``events.queries``.
    """
    nq = events.queries.size
    out = np.full((nq, _N_STATS), np.nan)
    out[:, 0] = 0.0
    mean_run = np.full(nq, np.nan)
    last2 = np.full(nq, np.nan)
    q_code = codes[events.queries]
    now = jobs.now[events.queries]

    # --- ended history: state after each fold, grouped by bucket ---------------------
    keep = codes[events.folds] >= 0
    folds, fold_step = events.folds[keep], events.fold_step[keep]
    order = np.argsort(codes[folds], kind="stable")
    folds, fold_step = folds[order], fold_step[order]
    group = codes[folds]
    n_after = np.zeros(nq, dtype=np.int64)
    has = np.zeros(nq, dtype=bool)
    if folds.size:
        start = _group_starts(group)
        first = np.maximum.accumulate(np.where(start, np.arange(folds.size), 0))
        rank = np.arange(folds.size) - first
        lg, run = jobs.log_run[folds], jobs.run[folds]
        by_group = pd.Series(group)
        frame = pd.DataFrame({"lg": lg, "sq": lg * lg, "run": run, "end": jobs.end[folds]})
        sums = frame[["lg", "sq", "run"]].groupby(by_group.to_numpy()).cumsum()
        last_end = frame["end"].groupby(by_group.to_numpy()).cummax().to_numpy()
        count = rank + 1
        mean = sums["lg"].to_numpy() / count
        var = np.maximum(sums["sq"].to_numpy() / count - mean * mean, 0.0)
        prev_run = np.where(rank >= 1, np.roll(run, 1), np.nan)
        pair = np.where(rank >= 1, (run + prev_run) / 2.0, run)
        ratio = jobs.log_ratio[folds]
        with_ratio = ~np.isnan(ratio)
        ratio_ewma = np.full(folds.size, np.nan)
        if with_ratio.any():
            sub = np.nonzero(with_ratio)[0]
            ratio_ewma[sub] = _ewma(ratio[sub], _group_starts(group[sub]))
            latest = _last_flagged(with_ratio, start)
            ratio_ewma = np.where(latest >= 0, ratio_ewma[np.maximum(latest, 0)], np.nan)
        state = np.column_stack([
            np.log1p(count), lg, np.log(np.maximum(pair, 1.0)), _median_recent(lg, rank),
            mean, np.sqrt(var), _ewma(lg, start), ratio_ewma,
        ])  # fmt: skip
        # the query at step p sees its bucket's folds with fold_step <= p
        span = np.int64(nq + 1)
        where = np.searchsorted(group * span + fold_step, q_code * span + np.arange(nq),
                                side="right") - 1
        safe = np.maximum(where, 0)
        has = (q_code >= 0) & (where >= 0) & (group[safe] == q_code)
        at = safe[has]
        out[has, :8] = state[at]
        out[has, 8] = np.log1p(np.maximum(now[has] - last_end[at], 0.0))
        n_after[has] = count[at]
        mean_run[has] = sums["run"].to_numpy()[at] / count[at]
        last2[has] = pair[at]

    # --- submissions: how many of the bucket's jobs were submitted before, and when -----
    valid = np.nonzero(q_code >= 0)[0]
    order = valid[np.argsort(q_code[valid], kind="stable")]
    sgroup = q_code[order]
    if order.size:
        start = _group_starts(sgroup)
        counted = events.counted_submit[order]
        before = np.cumsum(counted) - counted  # counted submissions earlier in the sweep
        first = np.maximum.accumulate(np.where(start, np.arange(order.size), 0))
        n_sub = before - before[first]
        incl = _last_flagged(counted, start)  # latest counted one at or before each
        prev = np.full(order.size, -1)
        prev[1:] = incl[:-1]
        prev[start] = -1  # strictly before, same bucket
        last_submit = np.where(prev >= 0, now[order[np.maximum(prev, 0)]], np.nan)
        since = np.log1p(np.maximum(now[order] - last_submit, 0.0))
        out[order, 9] = np.where(n_sub > 0, since, np.nan)
        out[order, 10] = np.maximum(n_sub - n_after[order], 0)
    out[q_code < 0, 10] = 0.0
    return out, mean_run, last2
