"""The update permission diff: any widening, of any kind, asks for trust again; narrowing never.

``widened_permissions`` is the one diff behind both the installer and the daemon's admin; the
last tests run it through the real installer (staged copies, install records, tree hashes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_capsule.install import (
    CapsuleInstaller,
    TrustAck,
    TrustRequired,
    widened_permissions,
)
from astrid_capsule.manifest import Capabilities, CapsuleManifest, parse_manifest
from astrid_core.storage import MemoryStorage

pytestmark = pytest.mark.anyio

BASE = """[package]
name = "cap"
version = "0.1.0"

[component]
entrypoint = "plugin.wasm"

[capabilities]
net = ["api.example.com", "*.cdn.example.com"]
fs_read = ["docs/**", "!docs/private/**"]
fs_write = ["out/**"]
kv = false
config = ["region"]

[env.TOKEN]
secret = true

[env.MODE]
default = "fast"

[[mcp_server]]
id = "search"
command = "bin/serve"
args = ["--stdio"]
env = { LEVEL = "1" }

[[tool]]
name = "fetch"
description = "fetch a page"
export = "fetch"

[[interceptor]]
event = "BeforeToolCall"
export = "check"

[[cron]]
name = "nightly"
schedule = "0 3 * * *"
action = "fetch"
"""

SECOND_SERVER = """
[[mcp_server]]
id = "notes"
command = "python3"
args = ["notes.py"]
"""


def manifest(text: str) -> CapsuleManifest:
    return parse_manifest(text)


def diff(old_text: str, new_text: str) -> list[str]:
    old = manifest(old_text)
    return widened_permissions(old, old.capabilities, manifest(new_text))


def edited(*replacements: tuple[str, str], append: str = "") -> str:
    text = BASE
    for before, after in replacements:
        assert before in text, before
        text = text.replace(before, after, 1)
    return text + append


@pytest.mark.parametrize(
    ("new_text", "expected"),
    [
        pytest.param(
            edited(('"*.cdn.example.com"]', '"*.cdn.example.com", "evil.example.org"]')),
            ["net: evil.example.org"],
            id="net-new-host",
        ),
        pytest.param(
            edited(('"api.example.com", ', '"*.example.com", ')),
            ["net: *.example.com"],
            id="net-wildcard-over-a-name",
        ),
        pytest.param(
            edited(('"!docs/private/**"]', '"!docs/private/**", "src/**"]')),
            ["fs_read: src/**"],
            id="fs-read-new-pattern",
        ),
        pytest.param(
            edited(('"docs/**", "!docs/private/**"', '"docs/**"')),
            ["fs_read: no longer excludes docs/private/**"],
            id="fs-read-exclusion-dropped",
        ),
        pytest.param(
            edited(('"docs/**", "!docs/private/**"', '"!docs/private/**", "docs/**"')),
            ["fs_read: patterns reordered (!docs/private/**, docs/**)"],
            id="fs-read-exclusion-made-ineffective",
        ),
        pytest.param(
            edited(('fs_write = ["out/**"]', 'fs_write = ["out/**", "docs/**"]')),
            ["fs_write: docs/**"],
            id="fs-write-new-pattern",
        ),
        pytest.param(edited(("kv = false", "kv = true")), ["kv: true"], id="kv"),
        pytest.param(
            edited(('config = ["region"]', 'config = ["region", "api_url"]')),
            ["config: api_url"],
            id="config-key",
        ),
        pytest.param(
            edited(append="\n[env.OTHER]\nsecret = true\n"), ["secret: OTHER"], id="secret"
        ),
        pytest.param(
            edited(("[env.MODE]\ndefault", "[env.MODE]\nsecret = true\ndefault")),
            ["secret: MODE"],
            id="setting-becomes-secret",
        ),
        pytest.param(
            edited(append=SECOND_SERVER),
            ["mcp_server: notes (python3 notes.py)"],
            id="mcp-server-new",
        ),
        pytest.param(
            edited(('command = "bin/serve"', 'command = "bin/other"')),
            ["mcp_server changed: search (bin/other --stdio)"],
            id="mcp-server-command",
        ),
        pytest.param(
            edited(('args = ["--stdio"]', 'args = ["--stdio", "--unsafe"]')),
            ["mcp_server changed: search (bin/serve --stdio --unsafe)"],
            id="mcp-server-args",
        ),
        pytest.param(
            edited(('LEVEL = "1"', 'LEVEL = "1", LD_PRELOAD = "x.so"')),
            ["mcp_server changed: search (bin/serve --stdio)"],
            id="mcp-server-env",
        ),
        pytest.param(
            edited(('default = "fast"', 'default = "fast --inspect"')),
            ["env: MODE (given to its MCP servers)"],
            id="env-value-given-to-servers",
        ),
        pytest.param(
            edited(append='\n[[interceptor]]\nevent = "AfterToolCall"\nexport = "seen"\n'),
            ["interceptor: AfterToolCall"],
            id="interceptor-new-event",
        ),
        pytest.param(
            edited(append='\n[[cron]]\nname = "often"\nschedule = "* * * * *"\naction = "fetch"\n'),
            ["cron: often (* * * * *) -> fetch"],
            id="cron-new",
        ),
        pytest.param(
            edited(('schedule = "0 3 * * *"', 'schedule = "*/5 * * * *"')),
            ["cron: nightly (*/5 * * * *) -> fetch"],
            id="cron-changed",
        ),
        pytest.param(
            edited(('entrypoint = "plugin.wasm"', 'entrypoint = "plugin.wasm"\nwasi = true')),
            ["component: WASI access"],
            id="wasi",
        ),
        pytest.param(
            edited(append='\n[[llm_provider]]\nid = "local"\n'),
            ["llm_provider: local"],
            id="llm-provider",
        ),
    ],
)
def test_each_kind_of_widening_is_reported(new_text: str, expected: list[str]) -> None:
    assert diff(BASE, new_text) == expected


def test_wasm_code_where_there_was_none_is_new() -> None:
    static = edited(('[component]\nentrypoint = "plugin.wasm"\n', ""))
    assert diff(static, BASE) == ["component: WASM code (plugin.wasm)"]


def test_narrowing_and_unchanged_permissions_widen_nothing() -> None:
    narrower = edited(
        ('0.1.0"', '0.2.0"'),
        ('"api.example.com", "*.cdn.example.com"', '"img.cdn.example.com"'),  # covered
        ('"docs/**", "!docs/private/**"', '"docs/**", "!docs/private/**", "!docs/drafts/**"'),
        ('fs_write = ["out/**"]', "fs_write = []"),
        ('config = ["region"]', "config = []"),
        ("[env.TOKEN]\nsecret = true\n", ""),
        ('[[interceptor]]\nevent = "BeforeToolCall"\nexport = "check"\n', ""),
        ('[[cron]]\nname = "nightly"\nschedule = "0 3 * * *"\naction = "fetch"\n', ""),
        # A new tool is no new permission: its calls are authorized and confined the same.
        (
            "[[tool]]\n",
            '[[tool]]\nname = "peek"\ndescription = "look"\nexport = "peek"\n\n[[tool]]\n',
        ),
    )
    assert diff(BASE, narrower) == []
    assert diff(BASE, BASE) == []
    no_servers = edited(
        ('[[mcp_server]]\nid = "search"\ncommand = "bin/serve"\nargs = ["--stdio"]\n', ""),
        ('env = { LEVEL = "1" }\n', ""),
    )
    assert diff(BASE, no_servers) == []


def test_the_diff_is_against_what_the_user_accepted() -> None:
    # The record's accepted capabilities, not the old manifest, are the baseline.
    old = manifest(BASE)
    accepted = Capabilities(net=("api.example.com",))
    assert widened_permissions(old, accepted, old) == [
        "net: *.cdn.example.com",
        "fs_read: docs/**",
        "fs_write: out/**",
        "config: region",
    ]


def test_an_unreadable_installed_revision_makes_everything_new() -> None:
    everything = widened_permissions(None, Capabilities(), manifest(BASE))
    assert "net: api.example.com" in everything
    assert "mcp_server: search (bin/serve --stdio)" in everything
    assert "interceptor: BeforeToolCall" in everything
    assert "cron: nightly (0 3 * * *) -> fetch" in everything
    assert "secret: TOKEN" in everything
    assert "component: WASM code (plugin.wasm)" in everything


# ---------------------------------------------------------------------- through the installer

STATIC = """[package]
name = "helper"
version = "{version}"

[capabilities]
net = [{net}]

[[mcp_server]]
id = "search"
command = "python3"
args = ["server.py"]
{extra}"""


def source(root: Path, version: str, net: str = '"api.example.com"', extra: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "Capsule.toml").write_text(STATIC.format(version=version, net=net, extra=extra))
    (root / "server.py").write_text("print('hello')\n")
    return root


@pytest.fixture
def installer(tmp_path: Path) -> CapsuleInstaller:
    # Trust renewed only on widening: these tests are about what widens.
    return CapsuleInstaller(tmp_path / "home", MemoryStorage(), renew_trust="on_widening")


async def test_update_with_a_new_interceptor_asks_again_and_a_narrowing_does_not(
    tmp_path: Path, installer: CapsuleInstaller
) -> None:
    await installer.commit(
        await installer.plan(source(tmp_path / "v1", "0.1.0")), TrustAck(method="flag")
    )
    hook = '\n[[interceptor]]\nevent = "UserPrompt"\n'
    wider = await installer.plan(source(tmp_path / "v2", "0.2.0", extra=hook))
    assert wider.widened == ["interceptor: UserPrompt"]
    assert "NEW permissions" in wider.disclosure()
    with pytest.raises(TrustRequired):
        await installer.commit(wider, trust=None)

    narrower = await installer.plan(source(tmp_path / "v3", "0.3.0", net=""))
    assert narrower.widened == []
    assert not narrower.needs_trust
    record = await installer.commit(narrower, trust=None)
    assert record.permissions_accepted["net"] == []
    # What the user accepts now is the narrower set: going back to the old one asks again.
    back = await installer.plan(source(tmp_path / "v4", "0.4.0"))
    assert back.widened == ["net: api.example.com"]
    installer.discard(back)


async def test_a_tampered_installed_revision_cannot_make_an_update_look_narrow(
    tmp_path: Path, installer: CapsuleInstaller
) -> None:
    record = await installer.commit(
        await installer.plan(source(tmp_path / "v1", "0.1.0")), TrustAck(method="flag")
    )
    # Someone adds the update's new server to the installed manifest, hoping for no diff.
    installed = installer.path_of(record) / "Capsule.toml"
    extra = '\n[[mcp_server]]\nid = "shell"\ncommand = "sh"\n'
    installed.write_text(installed.read_text() + extra)
    update = await installer.plan(source(tmp_path / "v2", "0.2.0", extra=extra))
    assert update.widened[0].startswith("the installed revision cannot be verified")
    assert "mcp_server: shell (sh)" in update.widened
    assert update.needs_trust
    installer.discard(update)
