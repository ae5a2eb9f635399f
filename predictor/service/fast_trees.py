"""A lean single-row path through an XGBoost model's trees, for ``/v1/jobs/score``.

XGBoost's ``inplace_predict`` costs ~0.3 ms of CPU per call on these machines
for one row, almost all of it fixed per-call set-up in the library (argument
JSON, array interface, proxy matrix, thread pool); walking ~100 trees of depth
6 is a few microseconds of that. :class:`CompiledTrees` holds the same trees as
flat arrays in depth-first order (a split's left child is the next node) and
walks them with a small C extension (``_tree_walk.c``, built where a compiler
was there at install): ~9 µs of CPU per row back to back, ~60 µs when the row
arrives at an idle service whose caches other processes have taken. Without the
extension, numpy walks all trees one level per step: ~70 / ~270 µs.

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
from collections.abc import Sequence
from typing import Any

import numpy as np

try:  # built by setup.py where a C compiler is there; else the numpy walk serves
    from predictor.service import _tree_walk
except ImportError:  # pragma: no cover - depends on the install
    _tree_walk = None

log = logging.getLogger(__name__)

#: Objectives whose prediction is the raw margin (base score + the sum of leaves).
IDENTITY_OBJECTIVES = frozenset(
    {"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:linear"}
)
#: Largest difference from the booster accepted on the probe rows (float32 sums).
TOLERANCE = 1e-4
#: A node's ``key`` is the feature it splits on, plus ``MISSING_RIGHT`` when a missing
#: value goes right; a leaf's key is ``LEAF`` and its ``value`` the leaf's output.
LEAF = -1
MISSING_RIGHT = 1 << 24
#: One node as ``_tree_walk.c`` reads it.
_NODE = np.dtype([("key", "=i4"), ("value", "=f4"), ("right", "=i4")])


class Unsupported(ValueError):
    """The booster uses something :class:`CompiledTrees` does not implement (message says what)."""


class CompiledTrees:
    """An XGBoost ``gbtree`` booster's trees as flat arrays; see the module docstring.

    ``walk`` picks the single-row walk: ``"c"`` (the compiled extension), ``"numpy"``,
    or ``"auto"`` (C where it was built).
    """

    def __init__(self, booster: Any, walk: str = "auto") -> None:
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
        if walk not in ("auto", "c", "numpy"):
            raise ValueError(f"walk must be auto, c or numpy, not {walk!r}")
        if walk == "c" and _tree_walk is None:
            raise Unsupported("the compiled walk was not built (no C compiler at install)")
        self.walk = "numpy" if walk == "numpy" or _tree_walk is None else "c"
        self.base_score = float(np.asarray(json.loads(params["base_score"]), dtype=np.float32)[0])
        self.booster = booster
        self.n_features = int(params["num_feature"])
        if self.n_features >= MISSING_RIGHT:
            raise Unsupported(f"{self.n_features} features")
        key: list[int] = []
        value: list[float] = []
        right: list[int] = []
        roots: list[int] = []
        depth = 0
        for tree in trees:
            if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
                raise Unsupported("vector leaves")
            if any(int(s) != 0 for s in tree["split_type"]):
                raise Unsupported("categorical splits")
            roots.append(len(key))
            depth = max(depth, _append_depth_first(tree, key, value, right))
        self.key = np.asarray(key, dtype=np.int32)
        self.value = np.asarray(value, dtype=np.float32)
        self.right = np.asarray(right, dtype=np.int32)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.depth = depth
        if self.walk == "c":
            self._pack_for_c()
        else:
            self._lay_out_for_numpy()

    def _pack_for_c(self) -> None:
        """The C walk's layout: (key, value, right) triples and the roots, as bytes."""
        nodes = np.empty(self.key.size, dtype=_NODE)
        nodes["key"], nodes["value"], nodes["right"] = self.key, self.value, self.right
        self._nodes, self._roots = nodes.tobytes(), self.roots.tobytes()

    def _lay_out_for_numpy(self) -> None:
        """The numpy walk's layout: a leaf points at itself, so extra steps leave it where
        it is; a missing value goes where the split's default says by reading the row's copy
        in which missing is -inf (left) or +inf (right), so one gather and
        ``value >= threshold`` is "go right" in every case."""
        ids = np.arange(self.key.size, dtype=np.int64)
        leaf = self.key < 0
        column = (self.key & (MISSING_RIGHT - 1)).astype(np.int64)
        column += np.where(self.key >= MISSING_RIGHT, self.n_features, 0)
        self._column = np.where(leaf, 0, column)
        self._threshold = np.where(leaf, np.float32(np.inf), self.value)
        children = (np.where(leaf, ids, ids + 1), np.where(leaf, ids, self.right))
        self._children = np.stack(children, axis=1).ravel()
        self._leaf = np.where(leaf, self.value, np.float32(0))
        self._level_roots = self.roots.astype(np.int64)

    def predict_row(self, row: Sequence[float] | np.ndarray) -> float:
        """The booster's prediction for one row (NaN = missing), compared in float32 as XGBoost."""
        values = row if isinstance(row, list) else np.asarray(row, dtype=np.float64).tolist()
        if len(values) != self.n_features:
            raise ValueError(f"a row of {self.n_features} features expected, got {len(values)}")
        if self.walk == "c":
            return self.base_score + _tree_walk.walk(values, self._nodes, self._roots)
        return self.base_score + self._numpy_walk(np.asarray(values, dtype=np.float32))

    def _numpy_walk(self, row: np.ndarray) -> float:
        """All trees at once, one level per step (the walk without the C extension)."""
        missing = np.isnan(row)
        low, high = np.float32(-np.inf), np.float32(np.inf)
        both = np.concatenate((np.where(missing, low, row), np.where(missing, high, row)))
        node = self._level_roots
        for _ in range(self.depth):
            go_right = both[self._column[node]] >= self._threshold[node]
            node = self._children[2 * node + go_right]
        return float(self._leaf[node].sum(dtype=np.float32))

    def inplace_predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        """``Booster.inplace_predict``: one row here, anything else by the booster."""
        if kwargs or not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] != 1:
            return np.asarray(self.booster.inplace_predict(X, **kwargs))
        return np.array([self.predict_row(X[0])], dtype=np.float32)

    def probe_rows(self, n: int = 256, seed: int = 0) -> np.ndarray:
        """Rows whose values sit on, just below and above the trees' thresholds, or are missing."""
        rng = np.random.default_rng(seed)
        X = rng.normal(0, 1e3, size=(n, self.n_features)).astype(np.float32)
        splits = self.key >= 0
        feature = self.key & (MISSING_RIGHT - 1)
        for f in range(self.n_features):
            cuts = self.value[splits & (feature == f)]
            if cuts.size:
                pick = rng.choice(cuts, n)
                side = rng.integers(0, 3, n)  # on, just below, just above the threshold
                below = np.nextafter(pick, np.float32(-np.inf))
                above = np.nextafter(pick, np.float32(np.inf))
                X[:, f] = np.where(side == 0, pick, np.where(side == 1, below, above))
        X[rng.random(X.shape) < 0.15] = np.nan
        return X


def _append_depth_first(
    tree: dict[str, Any], key: list[int], value: list[float], right: list[int]
) -> int:
    """Append one tree's nodes in pre-order (a split's left child is the next node);
    returns the tree's depth."""
    left_of, right_of = tree["left_children"], tree["right_children"]
    feature, cond = tree["split_indices"], tree["split_conditions"]
    default_left = tree["default_left"]
    right_slot: dict[int, int] = {}  # a right child's old id -> the slot of its parent's pointer
    stack, deepest = [(0, 0)], 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        here = len(key)
        if node in right_slot:
            right[right_slot.pop(node)] = here
        right.append(here)
        value.append(float(cond[node]))
        if left_of[node] == -1:
            key.append(LEAF)
            continue
        key.append(int(feature[node]) + (0 if int(default_left[node]) else MISSING_RIGHT))
        right_slot[int(right_of[node])] = here
        stack += [(int(right_of[node]), depth + 1), (int(left_of[node]), depth + 1)]
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
