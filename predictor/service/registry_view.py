"""What ``GET /v1/models`` shows of the registry."""

from __future__ import annotations

from predictor.registry import ModelLoadError, ModelRegistry
from predictor.service.schemas import ModelInfo

#: metadata keys worth showing (the rest, e.g. feature names, is bulk)
SHOWN_METADATA = ("created", "kind", "n_train", "metrics", "data_digest", "training_log")


def version_exists(registry: ModelRegistry, version: str) -> bool:
    """Whether ``version`` is a complete stored version."""
    return version in registry.versions()


def model_infos(
    registry: ModelRegistry, active: str | None, serving: str | None
) -> list[ModelInfo]:
    """One :class:`ModelInfo` per stored version, oldest first."""
    infos = []
    for version in registry.versions():
        try:
            meta = registry.metadata(version)
            details = {k: meta[k] for k in SHOWN_METADATA if k in meta}
        except ModelLoadError as exc:
            details = {"error": str(exc)}
        infos.append(
            ModelInfo(
                version=version,
                active=version == active,
                serving=version == serving,
                details=details,
            )
        )
    return infos
