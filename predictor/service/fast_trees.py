"""A lean single-row path through an XGBoost model's trees, for ``/v1/jobs/score``.

XGBoost's ``inplace_predict`` costs ~0.3 ms of CPU per call on these machines
for one row, almost all of it fixed per-call set-up in the library (argument
JSON, array interface, proxy matrix, thread pool); walking ~100 trees of depth
6 is a few microseconds of that. :class:`CompiledTrees` holds the same trees as
flat numpy arrays and walks all of them at once, one level per step (~60 µs).

It is a drop-in for the booster as the duration model uses it
(``estimator.inplace_predict(X)``): one row goes through the arrays, anything
larger to the booster itself. :func:`lean_model` swaps it in only after
checking it against the booster on rows built from the model's own split
thresholds (each threshold, just below it, missing values), and keeps the
booster when anything differs or the model is of a kind this does not read
(categorical splits, vector leaves, several outputs, an objective whose output
is not the raw margin).
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Objectives whose prediction is the raw margin (base score + the sum of leaves).
IDENTITY_OBJECTIVES = frozenset(
    {"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:linear"}
)
#: Largest difference from the booster accepted on the probe rows (float32 sums).
TOLERANCE = 1e-4


class Unsupported(ValueError):
    """The booster uses something :class:`CompiledTrees` does not implement (message says what)."""


class CompiledTrees:
    """An XGBoost ``gbtree`` booster's trees as flat arrays; see the module docstring."""

    def __init__(self, booster: Any) -> None:
        doc = json.loads(bytes(booster.save_raw("json")))
        learner = doc["learner"]
        objective = learner["objective"]["name"]
        if objective not in IDENTITY_OBJECTIVES:
            raise Unsupported(f"objective {objective} transforms the margin")
        params = learner["learner_model_param"]
        if int(params.get("num_target", 1)) != 1 or int(params.get("num_class", 0)) > 1:
            raise Unsupported("more than one output")
        booster_doc = learner["gradient_booster"]
        if booster_doc["name"] != "gbtree":
            raise Unsupported(f"booster {booster_doc['name']}")
        trees = booster_doc["model"]["trees"]
        if not trees:
            raise Unsupported("no trees")
        self.base_score = float(np.asarray(json.loads(params["base_score"]), dtype=np.float32)[0])
        self.booster = booster
        self.n_features = int(params["num_feature"])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("l", "r", "f", "t", "d", "v")}
        roots, offset, depth = [], 0, 0
        for tree in trees:
            if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
                raise Unsupported("vector leaves")
            if any(int(s) != 0 for s in tree["split_type"]):
                raise Unsupported("categorical splits")
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            cond = np.asarray(tree["split_conditions"], dtype=np.float32)
            leaf = left == -1
            node = np.arange(left.size) + offset
            # a leaf points at itself, so extra steps leave every finished walk where it is
            parts["l"].append(np.where(leaf, node, left + offset))
            parts["r"].append(np.where(leaf, node, right + offset))
            parts["f"].append(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
            parts["t"].append(np.where(leaf, np.float32(np.inf), cond))
            parts["d"].append(np.asarray(tree["default_left"], dtype=bool) | leaf)
            parts["v"].append(np.where(leaf, cond, 0).astype(np.float32))
            roots.append(offset)
            offset += left.size
            depth = max(depth, _depth(left, right))
        left, right, self.feature, self.threshold, default_left, self.leaf = (
            np.concatenate(parts[k]) for k in ("l", "r", "f", "t", "d", "v")
        )
        self.is_split = left != np.arange(left.size)  # leaves point at themselves
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        # The walk's own layout: a missing value goes where the split's default says by
        # reading the row's copy in which missing is -inf (left) or +inf (right), so one
        # gather picks the value and ``value >= threshold`` is "go right" in every case.
        self._column = self.feature + np.where(default_left, 0, self.n_features)
        self._children = np.stack([left, right], axis=1).ravel()

    def predict_row(self, row: np.ndarray) -> float:
        """The booster's prediction for one float32 row (NaN = missing)."""
        missing = np.isnan(row)
        low, high = np.float32(-np.inf), np.float32(np.inf)
        both = np.concatenate((np.where(missing, low, row), np.where(missing, high, row)))
        node = self.roots
        for _ in range(self.depth):
            right = both[self._column[node]] >= self.threshold[node]
            node = self._children[2 * node + right]
        return self.base_score + float(self.leaf[node].sum(dtype=np.float32))

    def inplace_predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        """``Booster.inplace_predict``: one row here, anything else by the booster."""
        if kwargs or not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] != 1:
            return np.asarray(self.booster.inplace_predict(X, **kwargs))
        return np.array([self.predict_row(X[0].astype(np.float32, copy=False))], dtype=np.float32)

    def probe_rows(self, n: int = 256, seed: int = 0) -> np.ndarray:
        """Rows whose values sit on, just below and above the trees' thresholds, or are missing."""
        rng = np.random.default_rng(seed)
        X = rng.normal(0, 1e3, size=(n, self.n_features)).astype(np.float32)
        for f in range(self.n_features):
            cuts = self.threshold[self.is_split & (self.feature == f)]
            if cuts.size:
                pick = rng.choice(cuts, n)
                side = rng.integers(0, 3, n)  # on, just below, just above the threshold
                below = np.nextafter(pick, np.float32(-np.inf))
                above = np.nextafter(pick, np.float32(np.inf))
                X[:, f] = np.where(side == 0, pick, np.where(side == 1, below, above))
        X[rng.random(X.shape) < 0.15] = np.nan
        return X


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if left[node] != -1:
            stack += [(int(left[node]), d + 1), (int(right[node]), d + 1)]
    return deepest


def lean_model(model: Any) -> Any:
    """``model`` with its XGBoost booster behind :class:`CompiledTrees` when that is exact.

    Returns a shallow copy (the registry's object is left alone), or ``model``
    itself when it has no booster or the compiled trees are not exact for it
    (logged with the reason).
    """
    booster = getattr(model, "estimator", None)
    if type(booster).__name__ != "Booster" or not hasattr(booster, "save_raw"):
        return model
    try:
        compiled = CompiledTrees(booster)
        X = compiled.probe_rows()
        want = np.asarray(booster.inplace_predict(X), dtype=np.float64)
        got = np.array([compiled.predict_row(x) for x in X])
        worst = float(np.max(np.abs(got - want)))
        if not worst <= TOLERANCE:
            raise Unsupported(f"differs from the booster by {worst:.3g} on probe rows")
    except Exception as exc:  # an optimisation only: never a reason not to serve the model
        log.warning("single-row scoring uses XGBoost itself: %s", exc)
        return model
    lean = copy.copy(model)
    lean.estimator = compiled
    return lean
