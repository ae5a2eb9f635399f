"""Service configuration: one TOML file plus ``FORESIGHT_*`` environment overrides.

Precedence, lowest to highest: built-in defaults, the ``[service]`` table of the
TOML file (``--config FILE`` or ``$FORESIGHT_CONFIG``), ``FORESIGHT_<FIELD>``
environment variables (e.g. ``FORESIGHT_PORT=9000``), then explicit overrides
such as command-line flags. Paths left unset resolve under the state
directory (``$FORESIGHT_HOME``). Unknown keys are an error naming the key.

Example ``foresight.toml``::

    [service]
    host = "127.0.0.1"
    port = 8765
    workers = 2
    scoring_open = true
    token_file = "/etc/foresight/token"
    slurm_runner = "local"          # or "docker:<container>", or "none" (default)
    snapshot_interval_s = 15
    hint_avoid_slowdown = 0.15
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from predictor.state import data_dir, state_dir

ENV_PREFIX = "FORESIGHT_"
CONFIG_ENV = "FORESIGHT_CONFIG"
DEFAULT_LOG_RELATIVE = "hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz"
_RUNNER = re.compile(r"^(none|local|docker:[A-Za-z0-9][A-Za-z0-9_.-]*)$")


class ConfigError(ValueError):
    """The configuration file or an override is invalid (the message names the key)."""


class ServiceConfig(BaseModel):
    """Everything ``foresight serve`` and :func:`predictor.service.create_app` need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to bind (loopback by default)")
    port: int = Field(8765, ge=0, le=65535, description="TCP port (0 = any free port)")
    workers: int = Field(2, ge=1, le=64, description="gunicorn worker processes")
    threads: int = Field(2, ge=1, le=64, description="threads per worker (gthread)")
    state_dir: Path | None = Field(None, description="state directory; $FORESIGHT_HOME")
    model_dir: Path | None = Field(None, description="model registry root; <state>/models")
    history_db: Path | None = Field(None, description="history store; <state>/history.sqlite")
    token_file: Path | None = Field(None, description="admin bearer token; <state>/token")
    scoring_open: bool = Field(True, description="scoring routes need no token when true")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="request body limit")
    max_batch_jobs: int = Field(50_000, ge=1, description="most jobs in one batch request")
    policy: str = Field("qssf", description="priority policy (policies.get_policy name)")
    default_log: Path | None = Field(None, description="log trained on at first start")
    train_on_start: bool = Field(False, description="train from default_log when no model")
    model_poll_s: float = Field(1.0, gt=0, description="how often workers check for a new model")
    slurm_runner: str = Field(
        "none", description='how to reach Slurm: "local", "docker:<container>" or "none"'
    )
    slurm_timeout_s: float = Field(10.0, gt=0, le=600, description="limit per Slurm command")
    hints_enabled: bool | Literal["auto"] = Field(
        "auto", description='placement hints: true, false or "auto" (on when Slurm is reachable)'
    )
    snapshot_interval_s: float = Field(
        15.0, ge=1, description="how often each worker re-reads running jobs per node"
    )
    snapshot_max_age_s: float = Field(
        120.0, gt=0, description="an older node snapshot gives status 'unavailable'"
    )
    hint_avoid_slowdown: float = Field(
        0.15, gt=0, lt=1, description="avoid a node if a pair is predicted slower than this"
    )
    hint_prefer_slowdown: float = Field(
        0.05, gt=0, lt=1, description="prefer a node if every pair stays within this slowdown"
    )
    hint_max_prefer: int = Field(8, ge=0, le=10_000, description="most prefer_nodes returned")
    batch_hints: bool = Field(
        True, description="hints in /v1/jobs/score:batch too (~0.7 ms per distinct job there)"
    )
    profile_db: Path | None = Field(None, description="job profile store; <state>/profiles.db")
    interference_model: Path | None = Field(
        None, description="saved InterferenceModel; default: trained on the Lucid data at start"
    )

    @field_validator("slurm_runner")
    @classmethod
    def _runner_spec(cls, value: str) -> str:
        if not _RUNNER.match(value):
            raise ValueError('must be "local", "docker:<container>" or "none"')
        return value

    @model_validator(mode="after")
    def _hint_thresholds(self) -> ServiceConfig:
        if self.hint_prefer_slowdown > self.hint_avoid_slowdown:
            raise ValueError("hint_prefer_slowdown must not exceed hint_avoid_slowdown")
        return self

    def resolved(self) -> ServiceConfig:
        """A copy with every unset path filled in from the state/data directories."""
        root = self.state_dir or state_dir()
        return self.model_copy(
            update={
                "state_dir": root,
                "model_dir": self.model_dir or root / "models",
                "history_db": self.history_db or root / "history.sqlite",
                "token_file": self.token_file or root / "token",
                "profile_db": self.profile_db or root / "profiles.db",
                "default_log": self.default_log or data_dir() / DEFAULT_LOG_RELATIVE,
            }
        )


def _env_overrides(environ: dict[str, str]) -> dict[str, str]:
    """``FORESIGHT_<FIELD>`` variables that name a config field (others are not ours)."""
    out = {}
    for name in ServiceConfig.model_fields:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None:
            out[name] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    table = doc.get("service", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [service] must be a table")
    return table


def load_config(
    path: Path | str | None = None,
    *,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> ServiceConfig:
    """Build the resolved :class:`ServiceConfig` (see the module docstring for precedence).

    ``overrides`` whose value is ``None`` are ignored, so CLI flags can be passed
    straight through.
    """
    env = dict(os.environ if environ is None else environ)
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        values.update(_read_toml(Path(path)))
        source = str(path)
    values.update(_env_overrides(env))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServiceConfig(**values).resolved()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({source} + environment): {problems}") from exc
