"""The Suspend/Resume programs, without Slurm: configuration, backends, process hygiene."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slurm_hooks.power import program

POWER_DIR = Path(program.__file__).parent


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "power.toml"
    path.write_text(text)
    return path


def recording_command(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """A ``command`` backend whose script appends "ACTION NODE" to the returned file."""
    record = tmp_path / "calls"
    script = tmp_path / "node-power"
    script.write_text(f'#!/bin/sh\necho "$1 $2" >> {record}\n')
    script.chmod(0o755)
    return {"backend": "command", "command": [str(script), "{action}", "{node}"]}, record


def test_unknown_backend_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'backend = "wol"\n')
    with pytest.raises(program.PowerError, match=r"backend = 'wol'.*docker, ipmi, command"):
        program.load_config(path)


@pytest.mark.parametrize("value", ['"20"', "-1", "true"])
def test_a_bad_confirm_s_is_named(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path, f'backend = "docker"\nconfirm_s = {value}\n')
    with pytest.raises(program.PowerError, match=r"confirm_s = .*expected seconds >= 0"):
        program.load_config(path)
    assert program.load_config(write_config(tmp_path, 'backend = "docker"\nconfirm_s = 2.5\n'))


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(program.PowerError, match=r"power\.toml"):
        program.load_config(tmp_path / "power.toml")


def test_command_backend_runs_once_per_node(tmp_path: Path) -> None:
    cfg, record = recording_command(tmp_path)
    assert program.power("suspend", ["n1", "n2"], cfg) == 0
    assert program.power("resume", ["n2"], cfg) == 0
    assert record.read_text().splitlines() == ["off n1", "off n2", "on n2"]


def test_failures_are_counted_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = {"backend": "command", "command": ["/bin/false", "{node}"]}
    assert program.power("suspend", ["n1", "n2"], cfg) == 2
    out = capsys.readouterr().out
    assert out.count("FAILED") == 2 and "suspend n1 via command" in out


def test_ipmi_backend_builds_the_ipmitool_call(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(program, "_run_checked", lambda node, argv: seen.append(list(argv)))
    cfg = {
        "backend": "ipmi",
        "bmc": "{node}-bmc.example",
        "user": "ops",
        "password_file": "/etc/slurm/ipmi.pass",
    }
    program.ipmi_power("gpu7", True, cfg)
    program.ipmi_power("gpu7", False, cfg)
    assert seen[0] == [
        "ipmitool",
        "-I",
        "lanplus",
        "-H",
        "gpu7-bmc.example",
        "-U",
        "ops",
        "-f",
        "/etc/slurm/ipmi.pass",
        "chassis",
        "power",
        "on",
    ]
    assert seen[1][-1] == "soft"


def test_docker_backend_reports_an_unreachable_socket(tmp_path: Path) -> None:
    cfg = {"backend": "docker", "docker_socket": str(tmp_path / "no.sock")}
    with pytest.raises(program.PowerError, match="n1: docker API unreachable"):
        program.docker_power("n1", False, cfg)


def test_program_resets_sigterm_and_path_then_detaches(tmp_path: Path) -> None:
    """Started the way slurmctld starts it (SIGTERM blocked, short PATH), it still works."""
    record = tmp_path / "calls"
    node_power = tmp_path / "node-power"
    node_power.write_text(
        f'#!/bin/sh\necho "$1 $2 $(grep SigBlk /proc/$$/status | cut -f2) $PATH" >> {record}\n'
    )
    node_power.chmod(0o755)
    scontrol = tmp_path / "bin" / "scontrol"  # `scontrol show hostnames` stand-in
    scontrol.parent.mkdir()
    scontrol.write_text('#!/bin/sh\necho "$3" | tr "," "\\n"\n')
    scontrol.chmod(0o755)
    cfg = write_config(
        tmp_path, f'backend = "command"\ncommand = ["{node_power}", "{{action}}", "{{node}}"]\n'
    )
    log = tmp_path / "power.log"
    env = {
        "PATH": f"{scontrol.parent}:/bin",
        "FORESIGHT_POWER_CONFIG": str(cfg),
        "FORESIGHT_POWER_LOG": str(log),
    }

    def block_sigterm() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    proc = subprocess.run(
        [sys.executable, str(POWER_DIR / "suspend"), "n1,n2"],
        env=env,
        preexec_fn=block_sigterm,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    for _ in range(100):  # the detached child finishes on its own
        if log.exists() and log.read_text().count("ok") == 2:
            break
        time.sleep(0.05)
    lines = record.read_text().splitlines()
    assert [ln.split()[:2] for ln in lines] == [["off", "n1"], ["off", "n2"]]
    sigblk = int(lines[0].split()[2], 16)
    assert not sigblk & (1 << (signal.SIGTERM - 1))  # SIGTERM no longer blocked
    assert "/usr/sbin" in lines[0].split()[3]
    assert "suspend n2 via command" in log.read_text()


def test_usage_error_without_a_hostlist() -> None:
    assert program.main("suspend", []) == 2


def scontrol_answers(answers: list[dict[str, str]]) -> Callable[..., subprocess.CompletedProcess]:
    """A fake ``scontrol show node -o``: each node's State, one answer a call, the last kept."""
    calls = iter(answers)
    last: dict[str, str] = {}

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess:
        nonlocal last
        last = next(calls, last)
        out = "".join(f"NodeName={n} Arch=x86_64 State={s} Cores=1\n" for n, s in last.items())
        return subprocess.CompletedProcess(argv, 0, out, "")

    return run


def test_a_node_that_never_registers_is_powered_on_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cfg, record = recording_command(tmp_path)
    cfg["confirm_s"] = 0.1
    scontrol = scontrol_answers([{"n4": "IDLE+POWERING_UP", "n6": "IDLE"}])
    real = program.powering_up
    monkeypatch.setattr(program, "powering_up", lambda nodes, run=None: real(nodes, scontrol))
    assert program.power("resume", ["n4", "n6"], cfg) == 0
    assert record.read_text().splitlines() == ["on n4", "on n6", "on n4"]  # n6 registered
    out = capsys.readouterr().out
    assert "resume n4 via command again (not registered 0.1 s after power-on)" in out
    assert program.power("suspend", ["n4"], cfg) == 0  # a suspend is not confirmed
    assert record.read_text().splitlines()[-1] == "off n4"


def test_requested_and_booting_nodes_count_as_powering_up() -> None:
    scontrol = scontrol_answers([{
        "n1": "IDLE+POWER_UP+POWERED_DOWN", "n2": "IDLE+POWERING_UP", "n3": "IDLE",
        "n4": "IDLE+POWERED_DOWN", "n5": "DOWN+POWERED_DOWN+NOT_RESPONDING",
    }])  # fmt: skip
    assert program.powering_up(["n1", "n2", "n3", "n4", "n5"], scontrol) == ["n1", "n2"]


def test_confirmation_is_off_by_default_and_a_failed_scontrol_is_reported(
    capsys: pytest.CaptureFixture,
) -> None:
    def fail(argv: list[str], **_: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(argv, 1, "", "slurm_load_node error: Unable to contact")

    assert program.confirm_resumed(["n1"], {"backend": "command"}, run=fail) == 0
    cfg = {"backend": "command", "confirm_s": 1}
    assert program.confirm_resumed(["n1"], cfg, run=fail, sleep=lambda s: None) == 1
    assert "cannot confirm: scontrol show node failed: slurm_load_node" in capsys.readouterr().out
