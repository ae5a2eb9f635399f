"""The one feature pipeline (see :mod:`.build`)."""

from predictor.features.build import (
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    CausalFeatures,
    build_feature_row,
    build_features,
    causal_features,
)
from predictor.features.request import REQUEST_FEATURE_NAMES, category_code, request_features

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_VERSION",
    "REQUEST_FEATURE_NAMES",
    "CausalFeatures",
    "build_feature_row",
    "build_features",
    "category_code",
    "causal_features",
    "request_features",
]
