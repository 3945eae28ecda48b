"""Capsule.toml: strict, typed, line-accurate."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_capsule.manifest import Capabilities, ManifestError, load_manifest, parse_manifest

GOOD = """
[package]
name = "notes"
version = "0.1.0"
description = "A tiny notes tool"
authors = ["Ada <ada@example.com>"]
license = "MIT"

[component]
entrypoint = "notes_tool.wasm"
hash = "%s"

[capabilities]
fs_read = ["notes/**"]
fs_write = ["notes/**"]
net = ["api.example.com", "*.example.org"]
kv = true

[config]
greeting = "hello"

[env.NOTES_TOKEN]
description = "Token for the notes service"
secret = true

[[mcp_server]]
id = "helper"
command = "python3"
args = ["-m", "helper"]

[[tool]]
name = "read_note"
description = "Read a note"
export = "read_note"

[[skill]]
name = "style"
content = "Write short notes."

[[cron]]
name = "sync"
schedule = "0 * * * *"
action = "read_note"

[[interceptor]]
event = "BeforeToolCall"

[[llm_provider]]
id = "local"
capabilities = ["text"]
""" % ("a" * 64)


def test_full_manifest_parses() -> None:
    manifest = parse_manifest(GOOD)
    assert manifest.name == "notes"
    assert manifest.secrets == ["NOTES_TOKEN"]
    assert manifest.capabilities.kv is True
    assert manifest.tool[0].export == "read_note"
    assert manifest.mcp_server[0].args == ("-m", "helper")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("fs_read = [", "fs_raed = ["),
            ":14: capabilities.fs_raed: unknown key (did you mean 'fs_read'?)",
        ),
        (('name = "notes"', 'name = "../x"'), ":3: package.name:"),
        (('version = "0.1.0"', 'version = "1"'), ":4: package.version:"),
        (('hash = "', 'hash = "zz'), "component.hash"),
        (
            ('entrypoint = "notes_tool.wasm"', 'entrypoint = "../../evil.wasm"'),
            "component.entrypoint",
        ),
        (('"api.example.com"', '"*"'), "capabilities.net"),
        (('fs_write = ["notes/**"]', 'fs_write = ["~/.ssh/**"]'), "workspace-relative"),
        (('fs_write = ["notes/**"]', 'fs_write = ["/etc/../root/**"]'), "workspace-relative"),
        (('fs_write = ["notes/**"]', 'fs_write = ["!/etc/passwd"]'), "not '/' or an exclusion"),
        (('fs_write = ["notes/**"]', 'fs_write = ["/"]'), "not '/' or an exclusion"),
        (('fs_write = ["notes/**"]', 'fs_write = ["../**"]'), "workspace-relative"),
        (('event = "BeforeToolCall"', 'event = "Whenever"'), "interceptor.0.event"),
        (("[[skill]]", "[[skills]]"), "skills: unknown key (did you mean 'skill'?)"),
    ],
)
def test_bad_manifests_name_line_and_key(edit: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*edit, 1)
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    assert expected in str(info.value)


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = GOOD.replace("fs_read =", "fs_raed =").replace('version = "0.1.0"', 'version = "x"')
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    assert len(info.value.problems) == 2


def test_invalid_toml_names_line() -> None:
    with pytest.raises(ManifestError, match="line 1"):
        parse_manifest("[package\n")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no Capsule\.toml"):
        load_manifest(tmp_path)


def test_permission_widening_diff() -> None:
    old = Capabilities(fs_read=("a/**",), net=("x.com",))
    new = Capabilities(fs_read=("a/**", "b/**"), net=("x.com", "y.com"), kv=True)
    assert old.widened_by(new) == ["net: y.com", "fs_read: b/**", "kv: true"]
    assert new.widened_by(old) == []
