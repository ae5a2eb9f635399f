"""Versioned model artifacts (see :mod:`.registry`)."""

from predictor.registry.registry import ModelLoadError, ModelRegistry, library_versions

__all__ = ["ModelLoadError", "ModelRegistry", "library_versions"]
