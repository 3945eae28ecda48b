"""The daemon's configuration inputs as a client compares them: keyed digests, never values."""

from __future__ import annotations

import re
from pathlib import Path

from astrid_gateway.config_inputs import (
    CONFIG_ENV,
    changed_inputs,
    config_inputs,
    describe_changes,
)

KEY = b"token-of-this-daemon"


def test_every_variable_the_runtime_reads_is_an_input() -> None:
    import astrid_runtime.config._load as load

    source = Path(load.__file__).read_text()
    read = set(re.findall(r'"((?:ASTRID|ANTHROPIC|OPENAI|TELEGRAM)_[A-Z_]+)"', source))
    read.discard("ASTRID_HOME")  # chooses the home, and with it the daemon itself
    assert read == set(CONFIG_ENV)


def test_a_changed_key_or_file_is_named_and_its_value_never_shown(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[model]\nmodel = "a"\n')
    daemon = config_inputs(tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-old"}, KEY)
    assert "sk-ant-old" not in repr(daemon)

    same = config_inputs(tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-old"}, KEY)
    assert changed_inputs(daemon, same) == []

    (tmp_path / "config.toml").write_text('[model]\nmodel = "b"\n')
    client = config_inputs(
        tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-new", "ASTRID_PROVIDER": "openai"}, KEY
    )
    changed = changed_inputs(daemon, client)
    assert changed == [
        f"user config {tmp_path / 'config.toml'}",
        "ASTRID_PROVIDER",
        "ANTHROPIC_API_KEY",
    ]
    text = describe_changes(changed, daemon)
    assert "ANTHROPIC_API_KEY is set here; the daemon started with another value" in text
    assert "ASTRID_PROVIDER is set here; the daemon started with unset" in text
    assert f"the user config {tmp_path / 'config.toml'} changed" in text
    assert "sk-ant" not in text


def test_a_variable_unset_here_is_not_a_difference(tmp_path: Path) -> None:
    daemon = config_inputs(tmp_path, {"OPENAI_API_KEY": "sk-1"}, KEY)
    assert changed_inputs(daemon, config_inputs(tmp_path, {}, KEY)) == []


def test_digests_depend_on_the_token(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-1"}
    ours = config_inputs(tmp_path, env, KEY)["OPENAI_API_KEY"]
    assert ours != config_inputs(tmp_path, env, b"another daemon")["OPENAI_API_KEY"]
