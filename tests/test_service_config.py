"""Service configuration: defaults, TOML, FORESIGHT_* overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.config import ConfigError, load_config


def test_defaults_resolve_under_state_dir(foresight_home: Path) -> None:
    cfg = load_config(environ={"FORESIGHT_HOME": str(foresight_home)})
    assert (cfg.host, cfg.port, cfg.workers) == ("127.0.0.1", 8765, 2)
    assert cfg.state_dir == foresight_home
    assert cfg.model_dir == foresight_home / "models"
    assert cfg.history_db == foresight_home / "history.sqlite"
    assert cfg.token_file == foresight_home / "token"
    assert cfg.default_log is not None and cfg.default_log.name.startswith("KTH")


def test_precedence_toml_env_overrides(tmp_path: Path, foresight_home: Path) -> None:
    toml = tmp_path / "f.toml"
    toml.write_text('[service]\nport = 9000\nworkers = 3\nscoring_open = false\npolicy = "sjf"\n')
    env = {"FORESIGHT_PORT": "9100", "FORESIGHT_SCORING_OPEN": "true", "FORESIGHT_HOME": "x"}
    cfg = load_config(toml, environ=env, workers=None, host="127.0.0.2")
    assert cfg.port == 9100  # env beats file
    assert cfg.workers == 3  # file beats default; None override ignored
    assert cfg.scoring_open is True
    assert cfg.host == "127.0.0.2"  # explicit override beats all
    assert cfg.policy == "sjf"


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "f.toml"
    toml.write_text("[service]\nthreads = 5\n")
    assert load_config(environ={"FORESIGHT_CONFIG": str(toml)}).threads == 5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[service]\nprot = 1\n", "prot"),
        ("[service]\nport = 'many'\n", "port"),
        ("[service]\nport = 70000\n", "port"),
        ("[service\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(toml, environ={})


def test_bad_env_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="workers"):
        load_config(environ={"FORESIGHT_WORKERS": "zero"})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(tmp_path / "nope.toml", environ={})
