"""``POST /v1/profiles``: store an explicit solo profile for a (user, job name)."""

from __future__ import annotations

from flask import Blueprint, current_app

from predictor.interference.profiles import ProfileError
from predictor.service.api import Access, api_route
from predictor.service.app import Service
from predictor.service.errors import ApiError
from predictor.service.schemas import ProfilePost, ProfileStored

bp = Blueprint("profiles", __name__)


@api_route(
    bp, "/v1/profiles", "POST",
    summary="Store an explicit solo profile for (user, job name); it wins over learned ones",
    body=ProfilePost, response=ProfileStored, access=Access.ADMIN, tag="profiles",
)  # fmt: skip
def post_profile(body: ProfilePost) -> ProfileStored:
    """Admin only: an explicit profile overrides what completions teach, for good."""
    service: Service = current_app.extensions["foresight"]
    try:
        service.profiles.post(body.user, body.name, body.profile)
    except ProfileError as exc:
        raise ApiError(400, str(exc)) from None
    service.placement.forget_cached()
    warnings = [f"unknown field {name!r} ignored" for name in body.unknown_fields()]
    if service.placement.enabled:
        warnings.append(
            "other workers use the new profile from their next node snapshot "
            f"(within {service.config.snapshot_interval_s:g} s)"
        )
    return ProfileStored(user=body.user, name=body.name, profile=body.profile, warnings=warnings)
