"""``foresight check``: the hook's configuration reader and each check's verdict."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from predictor.cli import app
from slurm_hooks import install_check
from slurm_hooks.hook_conf import DEFAULTS, read_hook_conf, type_errors
from slurm_hooks.install_check import run_checks, service_checks, slurm_checks
from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError

HOOK = Path(install_check.__file__).with_name("job_submit.lua")
CONFIG = {
    "SLURM_CONF": "/etc/slurm/slurm.conf", "SLURM_VERSION": "22.05.8",
    "JobSubmitPlugins": "lua", "PriorityType": "priority/multifactor",
    "AccountingStoreFlags": "job_comment", "SuspendProgram": "/opt/suspend",
    "ResumeProgram": "/opt/resume", "ResumeTimeout": "600 sec",
}  # fmt: skip
NEWEST = 1_700_000_000.0  # the newest end the stand-in service's history holds
DPKG_OK = "lua-socket install ok installed\nlua-cjson install ok installed\n"


def test_the_python_defaults_are_the_lua_hook_s():
    block = re.search(r"M\.defaults = \{(.*?)\n\}", HOOK.read_text(), re.S)[1]
    lua = dict(re.findall(r"(\w+) = (.+?),?\n", block + "\n"))
    assert set(lua) == set(DEFAULTS)
    for key, raw in lua.items():
        assert read_hook_conf(f"{key} = {raw.strip(chr(34))}")[0][key] == DEFAULTS[key], key


def test_hook_conf_types_values_and_names_bad_lines():
    text = "# comment\nurl = http://h:1/v1/jobs/score  # trailing\ndry_run = true\n" \
           "timeout_ms = 150\nno equals here\ncolour = blue\n"
    values, problems = read_hook_conf(text, "x.conf")
    assert values["url"] == "http://h:1/v1/jobs/score" and values["dry_run"] is True
    assert values["timeout_ms"] == 150 and values["apply_hints"] is True  # default kept
    assert problems == ["x.conf:5: not key = value", "x.conf:6: unknown key colour"]


def test_a_value_of_the_wrong_kind_fails_the_check():
    files = {"/etc/slurm/job_submit.lua": HOOK.read_text(),
             "/etc/slurm/job_submit_foresight.conf": "timeout_ms = fast\ndry_run = no\n"}
    (conf,) = [c for c in slurm_checks(canned(CONFIG, files))[0]
               if c.name == "job_submit_foresight.conf"]  # fmt: skip
    assert conf.status == "fail"
    assert "timeout_ms = fast is not a number (the hook fails on every job)" in conf.detail
    assert "dry_run = no is not true/false (Lua reads it as true)" in conf.detail
    assert type_errors(read_hook_conf("timeout_ms = 250\ndry_run = false")[0]) == []


def canned(config: dict[str, str] | None = None, files: dict[str, str] | None = None,
           dpkg: str | Exception = DPKG_OK, sacct_jobs: list[dict] | None = None) -> SlurmAdapter:
    """An adapter whose runner answers scontrol, cat, sacct and dpkg-query from these values."""
    sacct_jobs = sacct_jobs or []
    if files is None:
        files = {"/etc/slurm/job_submit.lua": HOOK.read_text(),
                 "/etc/slurm/job_submit_foresight.conf": "timeout_ms = 300\n"}

    def run(argv):
        if argv[:3] == ["scontrol", "show", "config"]:
            if config is None:
                raise SlurmCommandError(argv, 1, "Unable to contact slurm controller")
            return "".join(f"{k} = {v}\n" for k, v in config.items())
        if argv[0] == "cat":
            if argv[1] not in files:
                raise SlurmCommandError(argv, 1, "No such file or directory")
            return files[argv[1]]
        if argv[0] == "sacct":
            return json.dumps({"jobs": sacct_jobs})
        if argv[0] == "dpkg-query":
            if isinstance(dpkg, Exception):
                raise dpkg
            return dpkg
        raise AssertionError(argv)

    return SlurmAdapter(runner=run)


def verdicts(adapter: SlurmAdapter) -> dict[str, str]:
    return {c.name: c.status for c in slurm_checks(adapter)[0]}


def test_a_site_installed_as_the_readme_says_passes_every_slurm_check():
    assert set(verdicts(canned(CONFIG)).values()) == {"ok"}


def test_each_missing_piece_is_named():
    broken = {**CONFIG, "JobSubmitPlugins": "(null)", "PriorityType": "priority/basic",
              "AccountingStoreFlags": "(null)", "SuspendProgram": "(null)"}
    found = {c.name: (c.status, c.detail) for c in slurm_checks(canned(broken, files={}))[0]}
    assert found["JobSubmitPlugins"][0] == "fail"
    assert "add JobSubmitPlugins=lua" in found["JobSubmitPlugins"][1]
    assert found["PriorityType"][0] == "fail" and found["AccountingStoreFlags"][0] == "warn"
    assert found["job_submit.lua"][0] == "fail" and "is missing" in found["job_submit.lua"][1]
    assert found["job_submit_foresight.conf"][0] == "warn"  # the hook's defaults apply
    assert found["power saving"][0] == "warn" and "SuspendProgram" in found["power saving"][1]


def test_an_old_hook_copy_a_dry_run_and_missing_lua_modules_are_flagged():
    files = {"/etc/slurm/job_submit.lua": "-- an older Foresight\n-- /v1/jobs/score\n",
             "/etc/slurm/job_submit_foresight.conf": "dry_run = true\n"}
    found = verdicts(canned(CONFIG, files, dpkg="lua-socket install ok installed\n"))
    assert found["job_submit.lua"] == "warn" and found["job_submit_foresight.conf"] == "warn"
    assert found["lua modules"] == "fail"
    no_dpkg = SlurmCommandError(["dpkg-query"], 127, "dpkg-query: command not found")
    assert verdicts(canned(CONFIG, dpkg=no_dpkg))["lua modules"] == "skip"


def test_a_large_max_job_count_warns_of_the_lua_plugin_s_job_table():
    found = {c.name: c for c in slurm_checks(canned({**CONFIG, "MaxJobCount": "10000"}))[0]}
    assert found["Lua job table"].status == "ok" and "~25 ms" in found["Lua job table"].detail
    big = {**CONFIG, "MaxJobCount": "100000", "MinJobAge": "300 sec"}
    table = {c.name: c for c in slurm_checks(canned(big))[0]}["Lua job table"]
    assert table.status == "warn"
    assert "~250 ms" in table.detail and "60 ms" in table.detail
    assert "MinJobAge (now 300 sec)" in table.detail
    odd = {c.name: c.status for c in slurm_checks(canned({**CONFIG, "MaxJobCount": "lots"}))[0]}
    assert odd["Lua job table"] == "skip"


def test_slurm_unreadable_is_one_failure():
    checks, settings = slurm_checks(canned(None))
    assert [(c.name, c.status) for c in checks] == [("slurm", "fail")] and settings == {}


class _Service(BaseHTTPRequestHandler):
    ready = True

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.ready:
            self._answer(200, {"status": "ready", "model_version": "v1", "history_jobs": 40,
                               "history_newest_end": NEWEST})
        else:
            self._answer(503, {"status": "not ready", "detail": "no model"})

    garbage = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.garbage:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"<html")
            return
        self._answer(200, {"site_factor": 1})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1/jobs/score"
    server.shutdown()
    server.server_close()


def test_service_ready_and_scoring_within_the_deadline(service, monkeypatch):
    checks, ready = service_checks(service, timeout_ms=300)
    assert [(c.name, c.status) for c in checks] == [("service", "ok"), ("score", "ok")]
    assert "model v1" in checks[0].detail and "10 scores: median" in checks[1].detail
    assert ready["history_newest_end"] == NEWEST
    monkeypatch.setattr(_Service, "garbage", True)
    garbled = service_checks(service, timeout_ms=300)[0][1]
    assert garbled.status == "fail" and garbled.detail.startswith("no usable answer")
    monkeypatch.setattr(_Service, "ready", False)
    (down,), ready = service_checks(service, timeout_ms=300)
    assert down.status == "fail" and "not ready: no model" in down.detail and ready == {}


def test_service_not_answering_fails_and_the_cli_exits_1(monkeypatch):
    (check,), _ = service_checks("http://127.0.0.1:9/v1/jobs/score", timeout_ms=300)
    assert check.status == "fail" and "does not answer" in check.detail
    monkeypatch.setattr("predictor.cli.check.adapter_for", lambda container: canned(CONFIG))
    out = CliRunner().invoke(app, ["check", "--service", "http://127.0.0.1:9", "--json"])
    assert out.exit_code == 1
    statuses = {c["name"]: c["status"] for c in json.loads(out.stdout)}
    assert statuses["JobSubmitPlugins"] == "ok" and statuses["service"] == "fail"


def test_run_checks_uses_the_url_in_the_hook_s_config(service):
    port_conf = f"url = {service}\ntimeout_ms = 250\n"
    files = {"/etc/slurm/job_submit.lua": HOOK.read_text(),
             "/etc/slurm/job_submit_foresight.conf": port_conf}
    checks = {c.name: c for c in run_checks(canned(CONFIG, files))}
    assert checks["service"].status == "ok" and "deadline: 250 ms" in checks["score"].detail


def sacct_job(job_id: int, start: float, end: float) -> dict:
    """One finished job as 22.05's ``sacct --json`` shows it."""
    return {"job_id": job_id, "name": "x", "user": "u1", "account": "a", "partition": "p",
            "state": {"current": "COMPLETED"}, "required": {"CPUs": 1},
            "allocation_nodes": 1, "tres": {},
            "time": {"submission": start - 10, "start": start, "end": end,
                     "elapsed": end - start, "limit": 60}}  # fmt: skip


def test_history_check_compares_the_services_newest_end_with_sacct():
    ready = {"history_jobs": 40, "history_newest_end": NEWEST}
    fed = canned(CONFIG, sacct_jobs=[sacct_job(1, NEWEST - 100, NEWEST)])
    check = install_check.history_check(fed, ready, now=NEWEST + 3600)
    assert check.status == "ok" and "40 ended jobs in the history" in check.detail
    late = [sacct_job(1, NEWEST - 100, NEWEST), sacct_job(2, NEWEST, NEWEST + 1800),
            sacct_job(3, NEWEST, NEWEST + 300)]  # 3 ended within the grace: not counted
    check = install_check.history_check(canned(CONFIG, sacct_jobs=late), ready,
                                        now=NEWEST + 3600)
    assert check.status == "warn"
    assert check.detail.startswith("1 jobs ended in sacct after the newest the service knows")
    assert "is foresight-completion-feed running?" in check.detail
    empty = install_check.history_check(canned(CONFIG, sacct_jobs=late), {"history_jobs": 0},
                                        now=NEWEST + 3600)
    assert empty.status == "warn" and empty.detail.startswith("3 jobs ended")
