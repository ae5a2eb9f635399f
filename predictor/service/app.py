"""The Flask app factory: wires config, model slot, history, scorer, metrics and routes."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from predictor.config import ServiceConfig, load_config
from predictor.interference.profiles import ProfileStore
from predictor.models.interference import InterferenceModel
from predictor.registry import ModelLoadError, ModelRegistry
from predictor.service.auth import TokenAuth
from predictor.service.errors import install_error_handlers
from predictor.service.fast_path import ScoreFastPath
from predictor.service.history_sync import HistorySync
from predictor.service.metrics import ServiceMetrics
from predictor.service.model_slot import ModelSlot, Watcher
from predictor.service.placement import NodeReader, Placement
from predictor.service.scoring import Scorer
from predictor.service.slurm_link import slurm_adapter

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a request handler needs (``current_app.extensions["foresight"]``)."""

    config: ServiceConfig
    metrics: ServiceMetrics
    auth: TokenAuth
    slot: ModelSlot
    history: HistorySync
    scorer: Scorer
    watcher: Watcher
    placement: Placement
    profiles: ProfileStore
    slurm: NodeReader | None = None
    cluster_view: Any | None = None

    def no_model_message(self) -> str:
        """How to get a model, for 503 answers."""
        err = self.slot.last_error
        why = f" (the active model was refused: {err})" if err is not None else ""
        log = self.config.default_log
        if log is None or not Path(log).exists():  # an installed service has no shipped data
            log = "YOUR_LOG (sacct, SWF, Helios or Philly CSV)"
        return (
            f"no duration model is being served{why}. Train one with "
            f"`FORESIGHT_HOME={self.config.state_dir} foresight train --log "
            f"{log}`, or set train_on_start = true in the [service] "
            f"config; the service picks a new active model up within "
            f"{self.config.model_poll_s:g} s, or at once on POST /v1/models/reload."
        )


def _interference_loader(config: ServiceConfig) -> InterferenceModel:
    if config.interference_model is not None:
        return InterferenceModel.load(config.interference_model)
    from predictor.models.interference import default_model

    return default_model()


def _build_service(
    config: ServiceConfig,
    slurm: NodeReader | None,
    interference_model: InterferenceModel | None,
    cluster_view: Any | None,
) -> Service:
    assert config.model_dir and config.history_db and config.token_file and config.state_dir
    assert config.profile_db is not None
    metrics = ServiceMetrics()
    registry = ModelRegistry(config.model_dir)
    slot = ModelSlot(
        registry,
        config.state_dir / "service" / "reload.stamp",
        on_swap=metrics.set_serving,
        on_refuse=metrics.model_refused,
    )
    try:
        slot.load_active()
    except ModelLoadError as exc:
        log.error("not serving a model: %s", exc)
    history = HistorySync(config.history_db)
    scorer = Scorer(config.policy)
    scorer.check_policy()
    watcher = Watcher(config.model_poll_s, [slot.poll, history.flush, history.pull])
    profiles = ProfileStore(config.profile_db)
    if slurm is None:
        slurm = slurm_adapter(config)
    placement = Placement(
        config, profiles, slurm, model=interference_model,
        model_loader=lambda: _interference_loader(config),
    )  # fmt: skip
    return Service(config, metrics, TokenAuth(config.token_file), slot, history, scorer, watcher,
                   placement, profiles, slurm, cluster_view)  # fmt: skip


def _install_metrics_hooks(app: Flask, metrics: ServiceMetrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        t0 = g.get("t0")
        elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
        metrics.request_done(rule, request.method, resp.status_code, elapsed)
        return resp


def freeze_long_lived_objects() -> None:
    """Move everything alive now (history buckets, model) out of the collector's sight.

    A full collection over them takes 0.1-0.25 s with a 28k-job history; frozen,
    it never lands inside a request. Called once per gunicorn worker after the
    app is built (``post_worker_init``).
    """
    gc.collect()
    gc.freeze()


def create_app(
    config: ServiceConfig | None = None,
    *,
    watch: bool = True,
    slurm: NodeReader | None = None,
    interference_model: InterferenceModel | None = None,
    cluster_view: Any | None = None,
) -> Flask:
    """The service as a WSGI app.

    ``config`` defaults to :func:`predictor.config.load_config` (TOML + environment).
    ``watch`` starts this process's watcher thread (new models, other workers'
    history writes) and the node-snapshot thread; tests pass ``False`` and call
    ``service.watcher.steps`` / ``service.placement.refresh()`` by hand.
    ``slurm`` (anything with a SlurmAdapter's ``queue``/``nodes``/``run``) replaces
    the adapter built from ``slurm_runner``; ``interference_model`` replaces the
    one loaded at the first snapshot; ``cluster_view`` (an
    :class:`energy.controller.ClusterView`) replaces the Slurm view of ``/v1/energy/plan``.
    """
    from predictor.service import energy_api, health, jobs, models, profiles_api

    config = (config or load_config()).resolved()
    app = Flask("foresight")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    service = _build_service(config, slurm, interference_model, cluster_view)
    app.extensions["foresight"] = service
    install_error_handlers(app)
    _install_metrics_hooks(app, service.metrics)
    for module in (jobs, models, profiles_api, energy_api, health):
        app.register_blueprint(module.bp)
    app.wsgi_app = ScoreFastPath(app.wsgi_app, service)  # type: ignore[method-assign]
    if watch:
        service.watcher.start()
        service.placement.start()
    return app
