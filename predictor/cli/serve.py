"""``foresight serve``: the prediction service under gunicorn.

Worker model (documented in docs/service.md): ``workers`` processes (default 2,
one per core of a small controller node) of the ``gthread`` class with
``threads`` threads each (default 2), so keep-alive connections from hooks and
daemons are held cheaply while one request per thread runs. The app is
created in each worker (no preload), so every worker has its own model slot
and watcher; Prometheus runs in multiprocess mode over a per-run folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from predictor.cli.output import fail
from predictor.config import ConfigError, ServiceConfig, load_config


def _multiproc_dir(config: ServiceConfig) -> Path:
    """A fresh Prometheus multiprocess folder for this run (stale files would add up)."""
    assert config.state_dir is not None
    path = config.state_dir / "service" / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def gunicorn_options(config: ServiceConfig) -> dict[str, Any]:
    """gunicorn settings for ``config`` (bind, workers, threads, logging, hooks)."""
    from predictor.service.app import freeze_long_lived_objects
    from predictor.service.metrics import worker_exited

    assert config.state_dir is not None
    return {
        "bind": f"{config.host}:{config.port}",
        "workers": config.workers,
        "worker_class": "predictor.service.worker.StickyThreadWorker",
        "threads": config.threads,
        "keepalive": 75,
        "timeout": 120,
        "graceful_timeout": 30,
        "max_requests": 0,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "foresight-serve",
        "child_exit": lambda _server, worker: worker_exited(worker.pid),
        "post_worker_init": lambda _worker: freeze_long_lived_objects(),
        "limit_request_line": 8190,
        # one control socket per state dir, so several instances never collide
        "control_socket": str(config.state_dir / "service" / "gunicorn.ctl"),
    }


def run_gunicorn(config: ServiceConfig) -> None:
    """Run gunicorn in this process until it is stopped."""
    from gunicorn.app.base import BaseApplication

    class _ForesightApp(BaseApplication):  # type: ignore[misc]
        def __init__(self, cfg: ServiceConfig) -> None:
            self._service_config = cfg
            super().__init__()

        def load_config(self) -> None:
            for key, value in gunicorn_options(self._service_config).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from predictor.service import create_app

            return create_app(self._service_config)

    _ForesightApp(config).run()


def _train_default(config: ServiceConfig) -> None:
    """First start with ``train_on_start``: train and activate a model from ``default_log``."""
    from predictor.service.bootstrap import BootstrapError, train_default_model

    try:
        version = train_default_model(config)
    except BootstrapError as exc:
        fail(exc)
    typer.echo(f"trained and activated model {version} from {config.default_log}")


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8765)")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML file with a 'service' table")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (default 2)")] = None,
    threads: Annotated[int | None, typer.Option(help="threads per worker (default 2)")] = None,
) -> None:
    """Run the prediction service (gunicorn, binding 127.0.0.1:8765 by default)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_file, host=host, port=port, workers=workers, threads=threads)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_multiproc_dir(config))
    # one request = one core: OpenMP thread pools inside a request only contend
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from predictor.registry import ModelRegistry
    from predictor.service.auth import ensure_token_file

    assert config.token_file is not None and config.model_dir is not None
    if ensure_token_file(config.token_file):
        typer.echo(f"created admin token file {config.token_file}")
    if ModelRegistry(config.model_dir).active() is None:
        if config.train_on_start:
            _train_default(config)
        else:
            typer.echo(
                f"no active model in {config.model_dir}: /readyz answers 503 until one is "
                f"trained (foresight train --log {config.default_log})"
            )
    typer.echo(
        f"serving on http://{config.host}:{config.port} "
        f"({config.workers} workers x {config.threads} threads)"
    )
    run_gunicorn(config)
