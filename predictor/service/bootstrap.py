"""First start without a model: train one from the configured default log.

Runs ``foresight train --log <default_log>`` (the same command a person would
run, so the service never has a training path of its own) with
``FORESIGHT_HOME`` set to the service's state directory, in the
``foresight serve`` master process before any worker starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from predictor.config import ServiceConfig
from predictor.registry import ModelRegistry


class BootstrapError(RuntimeError):
    """Training at first start failed (the message says why and what to run)."""


def train_default_model(config: ServiceConfig) -> str:
    """Train and activate a model from ``config.default_log``; returns the active version."""
    assert config.default_log is not None and config.state_dir is not None
    assert config.model_dir is not None
    log = config.default_log
    if not log.exists():
        raise BootstrapError(f"train_on_start: default_log {log} does not exist")
    exe = Path(sys.executable).with_name("foresight")
    cmd = [str(exe), "train", "--log", str(log)]
    env = dict(os.environ, FORESIGHT_HOME=str(config.state_dir))
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise BootstrapError(f"train_on_start: `{' '.join(cmd)}` exited with {done.returncode}")
    version = ModelRegistry(config.model_dir).active()
    if version is None:
        raise BootstrapError(
            f"train_on_start: training finished but {config.model_dir} has no active model "
            f"(foresight train writes under {config.state_dir}; is model_dir set elsewhere?)"
        )
    return version
