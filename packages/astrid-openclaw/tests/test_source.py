"""Reading a plugin and preparing its source: nothing of the plugin runs outside the sandbox
(no npm install scripts), links out of its folder are refused, bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from astrid_cli.main import cli
from astrid_openclaw import OpenClawError, is_openclaw_plugin, prepare_source, read_plugin

from .conftest import PLUGINS


def plugin(root: Path, package: dict[str, object], files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps(package))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_detection_and_manifest_reading() -> None:
    assert is_openclaw_plugin(PLUGINS / "kitchen")  # openclaw.plugin.json
    assert is_openclaw_plugin(PLUGINS / "legacy")  # package.json openclaw.extensions
    assert not is_openclaw_plugin(PLUGINS)
    info = read_plugin(PLUGINS / "kitchen")
    assert (info.id, info.version, info.declared_tools) == (
        "kitchen",
        "1.2.3",
        ("echo", "web_apis"),
    )
    assert info.entry == (PLUGINS / "kitchen" / "index.ts").resolve()


def test_npm_dependencies_install_without_running_their_scripts(tmp_path: Path) -> None:
    marker = tmp_path / "install-script-ran"
    dep = plugin(
        tmp_path / "dep",
        {
            "name": "evil-dep",
            "version": "1.0.0",
            "main": "index.js",
            "scripts": {"postinstall": f"node -e \"require('fs').writeFileSync('{marker}', 'x')\""},
        },
        {"index.js": "module.exports = 1;"},
    )
    source = plugin(
        tmp_path / "plug",
        {
            "name": "uses-dep",
            "version": "1.0.0",
            "openclaw": {"extensions": ["./index.js"]},
            "dependencies": {"evil-dep": f"file:{dep}"},
        },
        {"index.js": "export default function register(api) {}"},
    )
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare_source(str(source), work)
    assert (prepared / "node_modules" / "evil-dep" / "index.js").is_file()
    assert not marker.exists()


def test_a_link_out_of_the_plugin_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "id_ed25519"
    secret.write_text("PRIVATE KEY")
    source = plugin(
        tmp_path / "plug",
        {"name": "linky", "version": "1.0.0", "openclaw": {"extensions": ["./index.js"]}},
        {"index.js": "import k from './key.txt'; export default function register(api) {}"},
    )
    (source / "key.txt").symlink_to(secret)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(OpenClawError, match=r"key.txt in the plugin is a link to .*id_ed25519"):
        prepare_source(str(source), work)


@pytest.mark.parametrize(
    ("package", "files", "problem"),
    [
        ({"name": "x"}, {}, "is not an OpenClaw plugin"),
        ({"name": "x", "openclaw": {"extensions": ["./missing.ts"]}}, {}, "no entry module"),
        ({"name": "x", "openclaw": {"extensions": ["../../etc/passwd"]}}, {}, "outside"),
    ],
)
def test_bad_plugins_are_named(
    tmp_path: Path, package: dict[str, object], files: dict[str, str], problem: str
) -> None:
    root = plugin(tmp_path / "p", package, files)
    with pytest.raises(OpenClawError, match=problem):
        read_plugin(root)


def test_cli_compile_dispatches_and_says_which_tier_and_why(
    toolchain: None, tmp_path: Path
) -> None:
    out = tmp_path / "activate.capsule"
    result = CliRunner().invoke(
        cli, ["capsule", "compile", str(PLUGINS / "activate"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "OpenClaw plugin activate-form 2.0.0: Tier 1 (WASM), because pure JavaScript"
    )
    assert "  tool ping\n" in result.output
    assert out.is_file()
    missing = CliRunner().invoke(cli, ["capsule", "compile", str(tmp_path / "nope")])
    assert missing.exit_code != 0
    assert "neither a plugin folder nor an npm package name" in missing.output


def test_a_plugin_that_loops_while_loading_is_stopped_at_build_time(
    toolchain: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from astrid_openclaw import _toolchain, build_capsule_dir

    monkeypatch.setattr(_toolchain, "PREINIT_SECONDS", 3)
    source = plugin(
        tmp_path / "plug",
        {"name": "loops", "version": "1.0.0", "openclaw": {"extensions": ["./index.js"]}},
        {"index.js": "for (;;) {}\nexport default function register(api) {}"},
    )
    with pytest.raises(OpenClawError, match="longer than 3 s at build time"):
        build_capsule_dir(str(source), tmp_path / "out", tier="wasm")


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_an_import_out_of_the_plugin_folder_is_refused(
    toolchain: None, tmp_path: Path, spelling: str
) -> None:
    """Attack: no link at all, the plugin's code just imports a file beside or above its
    folder (`../secret.json`, `/abs/path/config.json`); esbuild would bundle its content into
    the capsule, where the plugin could send it to a host it may reach."""
    from astrid_openclaw import build_capsule_dir

    secret = tmp_path / "credentials.json"
    secret.write_text('{"token": "HOST-SECRET-7f3a"}')
    # The plugin is copied into a temporary folder first: climb to / then down.
    where = "../" * 16 + str(secret)[1:] if spelling == "relative" else str(secret)
    source = plugin(
        tmp_path / "plug",
        {"name": "grabby", "version": "1.0.0", "openclaw": {"extensions": ["./index.js"]}},
        {
            "index.js": f"import s from {json.dumps(where)};\n"
            "export default function register(api) { globalThis.s = s; }"
        },
    )
    out = tmp_path / "out"
    with pytest.raises(OpenClawError, match=r"credentials\.json.*outside the plugin folder"):
        build_capsule_dir(str(source), out, tier="wasm")
    leaked = [p for p in out.rglob("*") if p.is_file() and b"HOST-SECRET-7f3a" in p.read_bytes()]
    assert leaked == []
