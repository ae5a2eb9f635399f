"""The systemd units in ``slurm_hooks/systemd/`` start commands the real CLI accepts."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from predictor.cli import app

UNIT_DIR = Path(__file__).resolve().parents[1] / "slurm_hooks" / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
PREFIX = "/opt/foresight/venv/bin/foresight"
COMMANDS = {
    "foresight.service": ["serve"],
    "foresight-priority-daemon.service": ["priority-daemon"],
    "foresight-completion-feed.service": ["completion-feed"],
    "foresight-energy.service": ["energy", "run"],
}


def read_unit(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of a repeated key kept (``Section.Key``)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def unit_env(unit: dict[str, list[str]]) -> dict[str, str]:
    return dict(v.split("=", 1) for v in unit.get("Service.Environment", []))


def example_env() -> dict[str, str]:
    """The variables ``foresight.default`` shows, commented out or not."""
    text = (UNIT_DIR / "foresight.default").read_text()
    return dict(re.findall(r"^#?(FORESIGHT_\w+)=(.*)$", text, re.M))


def argv(unit: dict[str, list[str]], env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: a ``$VAR`` word becomes the variable's words."""
    (line,) = unit["Service.ExecStart"]
    words = []
    for word in shlex.split(line):
        words += env[word[1:]].split() if word.startswith("$") else [word]
    return words


def parse(args: list[str]) -> tuple[list[str], dict]:
    """Resolve ``args`` through the real ``foresight`` command tree and parse its options."""
    cmd = typer.main.get_command(app)
    path = []
    while hasattr(cmd, "commands"):  # a group (typer carries its own click)
        name, args = args[0], args[1:]
        sub = cmd.get_command(cmd.context_class(cmd), name)
        assert sub is not None, f"foresight has no command {' '.join([*path, name])!r}"
        path.append(name)
        cmd = sub
    return path, cmd.make_context(" ".join(path), list(args)).params


def test_the_four_units_are_there():
    assert sorted(p.name for p in UNITS) == sorted(COMMANDS)


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
@pytest.mark.parametrize("env_from", ["unit", "example"])
def test_each_unit_starts_a_command_the_cli_parses(path, env_from):
    unit = read_unit(path)
    env = unit_env(unit) | (example_env() if env_from == "example" else {})
    words = argv(unit, env)
    assert words[0] == PREFIX
    command, params = parse(words[1:])
    assert command == COMMANDS[path.name]
    if command == ["energy", "run"]:
        # dry run unless the admin sets --apply (the example file shows how)
        assert params["dry_run"] is (env_from == "unit")


def test_units_share_one_user_and_state_directory():
    units = {p.name: read_unit(p) for p in UNITS}
    assert {u["Service.User"][0] for u in units.values()} == {"foresight"}
    assert {unit_env(u)["FORESIGHT_HOME"] for u in units.values()} == {"/var/lib/foresight"}
    assert units["foresight.service"]["Service.StateDirectory"] == ["foresight"]
    for name, unit in units.items():
        assert unit["Service.EnvironmentFile"] == ["-/etc/default/foresight"], name
        assert unit["Service.Restart"] == ["on-failure"], name
    for daemon in ("foresight-priority-daemon.service", "foresight-completion-feed.service"):
        assert "foresight.service" in units[daemon]["Unit.After"][0].split()


def test_example_file_names_only_variables_something_reads():
    units = [read_unit(p) for p in UNITS]
    used = {w[1:] for u in units for w in u["Service.ExecStart"][0].split() if w.startswith("$")}
    assert set(example_env()) - used == {"FORESIGHT_HOME", "FORESIGHT_CONFIG"}
    assert used <= set(example_env())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_is_silent(tmp_path):
    """systemd's own checker: unknown keys, bad values, a missing executable."""
    real = str(Path(sys.executable).with_name("foresight"))
    for path in UNITS:
        (tmp_path / path.name).write_text(path.read_text().replace(PREFIX, real))
    out = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
