"""``job_submit_foresight.conf``, read the way ``job_submit.lua`` reads it.

``key = value`` lines, ``#`` starts a comment, ``true``/``false`` and numbers
are typed, an unknown key or a line that is not ``key = value`` is a problem
(the hook logs it and goes on with its defaults). :data:`DEFAULTS` are the
hook's own (``M.defaults`` in ``job_submit.lua``; a test holds them equal).
A value of the wrong kind is worse: Lua takes it as it is, so a word where a
number belongs breaks every call (the hook fails open, always) and any word but
``false`` where a switch belongs reads as true (:func:`type_errors`).
"""

from __future__ import annotations

import re

HOOK_CONF_NAME = "job_submit_foresight.conf"
DEFAULTS: dict[str, str | float | bool] = {
    "url": "http://127.0.0.1:8765/v1/jobs/score",
    "timeout_ms": 300,
    "breaker_failures": 3,
    "breaker_cooldown_s": 30,
    "set_site_factor": True,
    "record_prediction": True,
    "apply_hints": True,
    "dry_run": False,
    "token_file": "",
    "log_decisions": True,
}
_LINE = re.compile(r"^(\w+)\s*=\s*(.*)$")


def reserve_ms(timeout_ms: float) -> float:
    """The part of ``timeout_ms`` the hook leaves to slurmctld (``M.reserve_s`` in
    ``job_submit.lua``: 20%, at least 15 ms, at most half; a test holds them equal)."""
    return min(max(15.0, timeout_ms * 0.20), timeout_ms * 0.5)


def _typed(raw: str) -> str | float | bool:
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return float(raw)
    except ValueError:
        return raw


def read_hook_conf(text: str, source: str = HOOK_CONF_NAME) -> tuple[dict, list[str]]:
    """The hook's settings (defaults overlaid by ``text``) and the problems found."""
    values, problems = dict(DEFAULTS), []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.partition("#")[0].strip()
        if not stripped:
            continue
        match = _LINE.match(stripped)
        if match is None:
            problems.append(f"{source}:{lineno}: not key = value")
        elif match[1] not in DEFAULTS:
            problems.append(f"{source}:{lineno}: unknown key {match[1]}")
        else:
            values[match[1]] = _typed(match[2])
    return values, problems


def type_errors(values: dict, source: str = HOOK_CONF_NAME) -> list[str]:
    """Settings whose value is not of their default's kind (number, true/false)."""
    out = []
    for key, default in DEFAULTS.items():
        value = values[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            out.append(f"{source}: {key} = {value} is not true/false (Lua reads it as true)")
        elif isinstance(default, int | float) and not isinstance(default, bool) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            out.append(f"{source}: {key} = {value} is not a number (the hook fails on every job)")
    return out
