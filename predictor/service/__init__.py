"""The prediction service: a Flask app Slurm's hooks and daemons call (see docs/service.md).

``create_app`` is imported lazily so that the schemas can be used (by clients,
tests, the OpenAPI tooling) without loading the models and the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from predictor.service.app import Service, create_app

__all__ = ["Service", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from predictor.service import app

        return getattr(app, name)
    raise AttributeError(name)
