"""``foresight check``: is Foresight installed the way the README says, and working?

Each check reads, never changes: Slurm's running configuration (``scontrol show
config``), the hook and its configuration beside ``slurm.conf``, what Slurm's Lua
plugin itself may cost a submission at ``MaxJobCount``, the Lua modules the hook
needs, and the service the hook's configuration names (ready, and how
fast it scores against the hook's deadline). A ``fail`` breaks what Foresight
promises (no hook, no effect of the site factor, no service); a ``warn`` is
worth a look (dry run, an outdated hook copy, power saving not configured).
"""

from __future__ import annotations

import json
import posixpath
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from energy.controller import check_power_settings
from energy.planner import PlannerConfig
from slurm_hooks.completion_feed import FINISHED
from slurm_hooks.hook_conf import (
    DEFAULTS,
    HOOK_CONF_NAME,
    read_hook_conf,
    reserve_ms,
    type_errors,
)
from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError

HOOK_SOURCE = Path(__file__).with_name("job_submit.lua")
SAMPLE_JOB = {"user": "foresight-check", "cpus": 1, "nodes": 1, "time_limit": 3600}
SCORE_TRIES = 10
HISTORY_GRACE_S = 600  # the feed polls every 30 s; a job may take a few polls to arrive
#: What Slurm's job_submit/lua spends per job record when it rebuilds ``slurm.jobs``
#: (about once a second, inside a submission), measured on the dev machine with 22.05
#: and 24.11 (docs/cluster.md, "The plugin's own cost").
LUA_TABLE_US_PER_JOB = 2.5


@dataclass
class Check:
    """One finding: ``status`` is ok, warn, fail or skip."""

    name: str
    status: str
    detail: str


def slurm_checks(adapter: SlurmAdapter) -> tuple[list[Check], dict]:
    """Slurm's configuration as the hook needs it; also returns the hook's settings."""
    try:
        config = adapter.config()
    except SlurmCommandError as exc:
        return [Check("slurm", "fail", f"cannot read Slurm's configuration: {exc}")], {}
    conf_dir = posixpath.dirname(config.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    out = [Check("slurm", "ok", f"{config.get('SLURM_VERSION', '?')}, {config.get('SLURM_CONF')}")]
    plugins = config.get("JobSubmitPlugins", "")
    out.append(Check("JobSubmitPlugins", "ok", plugins) if "lua" in plugins else Check(
        "JobSubmitPlugins", "fail",
        f"is {plugins or '(null)'}: add JobSubmitPlugins=lua to slurm.conf, then scontrol "
        "reconfigure (until then no submission reaches Foresight)"))
    prio = config.get("PriorityType", "")
    out.append(Check("PriorityType", "ok", prio) if prio == "priority/multifactor" else Check(
        "PriorityType", "fail",
        f"is {prio}: the site factor only counts with PriorityType=priority/multifactor"))
    flags = config.get("AccountingStoreFlags", "")
    out.append(Check("AccountingStoreFlags", "ok", flags) if "job_comment" in flags else Check(
        "AccountingStoreFlags", "warn",
        f"is {flags or '(null)'}: add job_comment to keep comments in accounting"))
    out.append(_hook_script(adapter, posixpath.join(conf_dir, "job_submit.lua")))
    conf_check, settings = _hook_conf(adapter, posixpath.join(conf_dir, HOOK_CONF_NAME))
    out += [conf_check, _lua_job_table(config, float(settings["timeout_ms"])),
            _lua_modules(adapter), _power_saving(config)]
    return out, settings


def _lua_job_table(config: dict[str, str], timeout_ms: float) -> Check:
    """What Slurm's Lua plugin itself may cost a submission at ``MaxJobCount`` job records."""
    try:
        limit = int(config.get("MaxJobCount", "10000").split()[0])
    except ValueError:
        return Check("Lua job table", "skip", f"MaxJobCount = {config['MaxJobCount']!r}")
    cost_ms = limit * LUA_TABLE_US_PER_JOB / 1000
    detail = (f"MaxJobCount = {limit}: Slurm's Lua plugin rebuilds its table of every job "
              f"record about once a second, inside a submission (~{LUA_TABLE_US_PER_JOB:g} µs "
              f"each where measured: up to ~{cost_ms:.0f} ms)")  # fmt: skip
    if cost_ms <= reserve_ms(timeout_ms):
        return Check("Lua job table", "ok", detail)
    return Check("Lua job table", "warn", f"{detail}, beyond the {reserve_ms(timeout_ms):.0f} "
                 f"ms the hook leaves slurmctld within timeout_ms = {timeout_ms:g}; a shorter "
                 f"MinJobAge (now {config.get('MinJobAge', '?')}) keeps ended jobs out of it")


def _read(adapter: SlurmAdapter, path: str) -> str | None:
    try:
        return adapter.run(["cat", path])
    except SlurmCommandError:
        return None


def _hook_script(adapter: SlurmAdapter, path: str) -> Check:
    text = _read(adapter, path)
    if text is None:
        return Check("job_submit.lua", "fail",
                     f"{path} is missing: copy slurm_hooks/job_submit.lua there")
    if "/v1/jobs/score" not in text:
        return Check("job_submit.lua", "fail", f"{path} is not Foresight's hook")
    if text != HOOK_SOURCE.read_text():
        return Check("job_submit.lua", "warn",
                     f"{path} differs from this Foresight's {HOOK_SOURCE} (an older copy?)")
    return Check("job_submit.lua", "ok", f"{path} (this version)")


def _hook_conf(adapter: SlurmAdapter, path: str) -> tuple[Check, dict]:
    text = _read(adapter, path)
    settings, problems = read_hook_conf(text or "", path)
    wrong = type_errors(settings, path)
    if wrong:
        return Check(HOOK_CONF_NAME, "fail", "; ".join(wrong)), dict(DEFAULTS)
    actions = [a for a in ("set_site_factor", "record_prediction", "apply_hints") if settings[a]]
    summary = (f"{settings['url']}, timeout {settings['timeout_ms']:g} ms, "
               f"actions: {', '.join(actions) or 'none'}")
    if text is None:
        return Check(HOOK_CONF_NAME, "warn", f"{path} is missing: the hook's defaults apply "
                     f"({summary})"), settings
    if problems:
        return Check(HOOK_CONF_NAME, "warn", "; ".join(problems)), settings
    if settings["dry_run"]:
        return Check(HOOK_CONF_NAME, "warn", f"dry_run = true: decisions are only logged "
                     f"({summary})"), settings
    if float(settings["timeout_ms"]) > 1000:
        return Check(HOOK_CONF_NAME, "warn", f"timeout_ms = {settings['timeout_ms']:g}: every "
                     "submission waits that long while the service hangs"), settings
    return Check(HOOK_CONF_NAME, "ok", summary), settings


def _lua_modules(adapter: SlurmAdapter) -> Check:
    try:
        status = adapter.run(["dpkg-query", "-W", "--showformat=${Package} ${Status}\\n",
                              "lua-socket", "lua-cjson"])  # fmt: skip
    except SlurmCommandError as exc:
        if exc.returncode == 127:
            return Check("lua modules", "skip", "no dpkg-query here: make sure lua-socket and "
                         "lua-cjson load in Lua 5.1")
        status = exc.stderr
    missing = [p for p in ("lua-socket", "lua-cjson") if f"{p} install ok installed" not in status]
    if missing:
        return Check("lua modules", "fail", f"{', '.join(missing)} not installed: apt-get "
                     "install lua-socket lua-cjson (without them the hook fails open, always)")
    return Check("lua modules", "ok", "lua-socket, lua-cjson installed")


def _power_saving(config: dict[str, str]) -> Check:
    problems = check_power_settings(config, PlannerConfig())
    if problems:
        return Check("power saving", "warn", "energy run --apply would refuse: "
                     + "; ".join(problems))
    return Check("power saving", "ok", f"SuspendProgram {config.get('SuspendProgram')}")


def history_check(adapter: SlurmAdapter, ready: dict, now: float | None = None) -> Check:
    """Do completions reach the service? Jobs that ran and ended in ``sacct`` over the
    last day, against the newest end the service's history holds (from ``/readyz``)."""
    now = time.time() if now is None else now
    try:
        jobs = adapter.jobs(since=now - 86400, states=FINISHED)
    except SlurmCommandError as exc:
        return Check("history", "skip", f"cannot read sacct: {exc}")
    ran = jobs[(jobs["start_time"].notna()) & (jobs["end_time"] > jobs["start_time"])]
    newest = ready.get("history_newest_end")
    held = f"{ready.get('history_jobs', 0)} ended jobs in the history"
    if newest is None:
        behind = ran
        held += " (none)"
    else:
        behind = ran[ran["end_time"] > float(newest) + HISTORY_GRACE_S]
        held += f", the newest ended {time.strftime('%Y-%m-%d %H:%M', time.gmtime(newest))} UTC"
    if len(behind):
        return Check("history", "warn", f"{len(behind)} jobs ended in sacct after the newest "
                     f"the service knows ({held}): is foresight-completion-feed running?")
    return Check("history", "ok", f"{held}; sacct has nothing newer")


def service_checks(
    url: str, timeout_ms: float, token: str | None = None
) -> tuple[list[Check], dict]:
    """The service behind the hook's ``url``: ready, and scoring within the deadline;
    also returns its ``/readyz`` answer when it is ready (else {})."""
    base = url.split("/v1/")[0].rstrip("/")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def call(path: str, body: dict | None = None) -> tuple[int, dict]:
        """(status, JSON object); OSError when nothing answers, ValueError for non-JSON."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        answer = json.loads(raw or b"{}")
        return status, answer if isinstance(answer, dict) else {"error": str(answer)[:200]}

    try:
        status, ready = call("/readyz")
    except (OSError, ValueError) as exc:
        return [Check("service", "fail", f"{base} does not answer ({exc}): the hook accepts "
                      "every job unchanged until it does")], {}
    if status != 200:
        return [Check("service", "fail",
                      f"{base} is not ready: {ready.get('detail', status)}")], {}
    out = [Check("service", "ok", f"{base} ready, model {ready.get('model_version')}")]
    took = []
    for _ in range(SCORE_TRIES):
        started = time.perf_counter()
        try:
            status, answer = call("/v1/jobs/score", SAMPLE_JOB)
        except (OSError, ValueError) as exc:
            return [*out, Check("score", "fail", f"no usable answer: {exc}")], ready
        took.append((time.perf_counter() - started) * 1000)
        if status != 200:
            return [*out, Check("score", "fail",
                                f"HTTP {status}: {answer.get('error', answer)}")], ready
    took.sort()
    detail = (f"{SCORE_TRIES} scores: median {took[len(took) // 2]:.1f} ms, max "
              f"{took[-1]:.1f} ms (the hook's deadline: {timeout_ms:g} ms)")
    return [*out, Check("score", "warn" if took[-1] > timeout_ms / 2 else "ok", detail)], ready


def run_checks(adapter: SlurmAdapter, service_url: str | None = None) -> list[Check]:
    """Every check: Slurm's side, then the service the hook uses (or ``service_url``)."""
    checks, settings = slurm_checks(adapter)
    settings = settings or dict(DEFAULTS)
    token_file = str(settings["token_file"])
    token = (_read(adapter, token_file) or "").strip() if token_file else None
    service, ready = service_checks(service_url or str(settings["url"]),
                                    float(settings["timeout_ms"]), token)
    history = [history_check(adapter, ready)] if ready and checks[0].status == "ok" else []
    return checks + service + history


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)
