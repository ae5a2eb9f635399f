"""``GET /v1/energy/plan``: the energy controller's next plan, read-only."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, current_app

from predictor.service.api import Access, api_route
from predictor.service.app import Service
from predictor.service.errors import ApiError
from predictor.service.schemas import EnergyPlan

bp = Blueprint("energy", __name__)

#: a plan this recent is answered again instead of asking Slurm anew
REUSE_S = 5.0
_lock = threading.Lock()


def _view(service: Service) -> Any:
    if service.cluster_view is not None:
        return service.cluster_view
    if service.slurm is None:
        raise ApiError(503, "no energy plan: Slurm is not configured (slurm_runner = 'none'); "
                            "set slurm_runner to 'local' or 'docker:<container>'")  # fmt: skip
    from energy.slurm_view import SlurmClusterView

    return SlurmClusterView(service.slurm)


@api_route(
    bp, "/v1/energy/plan", "GET",
    summary="The energy controller's next plan (dry run: nothing is powered)",
    response=EnergyPlan, access=Access.SCORING, errors=(503,), tag="energy",
)  # fmt: skip
def energy_plan() -> EnergyPlan:
    """503 with the reason when Slurm cannot be read or power saving is not configured
    (``SuspendProgram``/``ResumeProgram`` unset); other problems the controller sees (e.g. a
    ``ResumeTimeout`` shorter than the boot latency) are listed in ``problems``."""
    from energy.controller import REQUIRED_SETTINGS, current_plan

    service: Service = current_app.extensions["foresight"]
    view = _view(service)
    assert service.config.state_dir is not None
    last: dict[str, Any] = current_app.extensions.setdefault("foresight.energy_plan", {})
    with _lock:  # one plan at a time per worker: Slurm is asked at most every REUSE_S
        if time.time() - last.get("at", 0.0) >= REUSE_S:
            last["plan"] = current_plan(view, home=service.config.state_dir / "energy")
            last["at"] = time.time()
        plan = last["plan"]
    if plan.get("status") == "skipped":
        raise ApiError(503, f"no energy plan: {plan.get('reason')}")
    missing = [p for p in plan.get("problems", [])
               if any(p.startswith(f"{key} is not set") for key in REQUIRED_SETTINGS)]  # fmt: skip
    if missing:
        raise ApiError(503, "no energy plan: " + "; ".join(missing))
    return EnergyPlan.model_validate(plan)
