"""``astrid capsule`` end to end: the real CLI against a real daemon subprocess.

One daemon serves the whole module (each test uses its own capsule names); every CLI call is
a separate process, as a person's would be.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from astrid_capsule.install import TRUST_REQUIRED_MESSAGE
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

NOTES_WASM = (
    Path(__file__).resolve().parents[2] / "astrid-capsule" / "wasm" / "build" / "notes_tool.wasm"
)


# ---------------------------------------------------------------------- daemon and CLI


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("capsule-cli") / "home"
    write_scripted_config(home, None, [])
    # These tests are about what widens; the default ("always") is tested in astrid-capsule.
    with (home / "config.toml").open("a") as config:
        config.write('\n[capsules]\nrenew_trust = "on_widening"\n')
    proc = start_daemon(home)
    try:
        yield home
    finally:
        stop_daemon(proc)


def astrid(
    home: Path, *args: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # A new session: no controlling terminal, so every answer comes from ``stdin``.
    env = {**os.environ, "COLUMNS": "120"}
    return run_cli(home, *args, env=env, stdin=stdin, cwd=cwd, timeout=60, new_session=True)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def installed(home: Path) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(ok(astrid(home, "capsule", "list", "--json")))}


def capsule_audit(home: Path, name: str) -> list[dict[str, Any]]:
    """The audit entries about capsule ``name``, read from a real export of the log."""
    export = home.parent / f"export-{time.monotonic_ns()}.jsonl"
    ok(astrid(home, "audit", "export", str(export)))
    found: list[dict[str, Any]] = []
    for line in export.read_text().splitlines():
        record = json.loads(line)
        if record["type"] != "entry":
            continue
        outcome = record["entry"]["outcome"]
        if outcome["kind"].startswith("capsule_") and outcome["detail"].get("name") == name:
            found.append(record["entry"])
    return found


def static_capsule(
    root: Path, name: str, version: str = "0.1.0", net: str = "", extra: str = ""
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Capsule.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "{version}"\ndescription = "greets people"\n\n'
        f"[capabilities]\nnet = [{net}]\n\n"
        '[[skill]]\nname = "greet"\ncontent = "Say hello."\n' + extra
    )
    return root


# ---------------------------------------------------------------------- install and trust


def test_dry_run_writes_nothing(home: Path, tmp_path: Path) -> None:
    source = static_capsule(tmp_path / "src", "drydock", net='"api.example.com"')
    out = ok(astrid(home, "capsule", "install", str(source), "--dry-run"))
    assert "Capsule drydock 0.1.0" in out
    assert "network hosts: api.example.com" in out
    assert "UNSIGNED" in out
    assert "█" in out  # the big letters
    assert "dry run: nothing was installed" in out
    assert "drydock" not in installed(home)
    root = home / "capsules"
    assert not (root / "drydock").exists()
    assert list(root.glob(".staging-*")) == []
    assert capsule_audit(home, "drydock") == []


def test_yes_without_trust_fails_with_the_exact_text(home: Path, tmp_path: Path) -> None:
    source = static_capsule(tmp_path / "src", "yesman")
    result = astrid(home, "capsule", "install", str(source), "--yes")
    assert result.returncode == 1
    assert f"error: {TRUST_REQUIRED_MESSAGE}" in result.stderr
    assert "yesman" not in installed(home)
    assert list((home / "capsules").glob(".staging-*")) == []


def test_trust_flag_installs_records_and_audits(home: Path, tmp_path: Path) -> None:
    source = static_capsule(tmp_path / "src", "flagged", net='"api.example.com"')
    out = json.loads(ok(astrid(home, "capsule", "install", str(source), "--trust", "--json")))
    record = out["installed"]
    assert record["trust_method"] == "flag"
    assert record["trust_actor"].startswith("cli:")
    assert record["content_hash"] == out["disclosure"]["content_hash"]
    assert record["permissions_accepted"]["net"] == ["api.example.com"]
    assert record["trust_acknowledged_at"] > 0

    [entry] = capsule_audit(home, "flagged")
    assert entry["outcome"]["kind"] == "capsule_install"
    assert entry["outcome"]["detail"]["content_hash"] == record["content_hash"]
    assert entry["outcome"]["detail"]["trust_method"] == "flag"

    info = json.loads(ok(astrid(home, "capsule", "info", "flagged", "--json")))
    assert info["record"] == record
    assert info["verified"] is True


def test_update_lifecycle_widening_asks_again_then_rollback_and_remove(
    home: Path, tmp_path: Path
) -> None:
    v1 = static_capsule(tmp_path / "v1", "widen", net='"api.example.com"')
    wrong = astrid(home, "capsule", "install", str(v1), stdin="trust someone-else\n")
    assert wrong.returncode == 1
    assert "trust was not acknowledged" in wrong.stderr

    first = ok(astrid(home, "capsule", "install", str(v1), stdin="trust widen\n"))
    assert 'Type "trust widen" to install:' in first
    # Revision 1: the refused attempt above installed nothing.
    assert "installed widen 0.1.0 (revision 1; trust: interactive by cli:" in first

    v2 = static_capsule(
        tmp_path / "v2", "widen", version="0.2.0", net='"api.example.com", "evil.example.net"'
    )
    refused = astrid(home, "capsule", "install", str(v2), "--yes")
    assert refused.returncode == 1
    assert TRUST_REQUIRED_MESSAGE in refused.stderr
    assert "NEW permissions compared to the installed revision:" in refused.stdout
    assert "+ net: evil.example.net" in refused.stdout

    updated = ok(astrid(home, "capsule", "install", str(v2), stdin="trust widen\n"))
    assert 'Type "trust widen" to update:' in updated
    assert "updated widen 0.2.0 (revision 2;" in updated  # the --yes attempt changed nothing

    v3 = static_capsule(tmp_path / "v3", "widen", version="0.2.1", net='"evil.example.net"')
    quiet = ok(astrid(home, "capsule", "install", str(v3), "--yes"))  # narrower: no trust asked
    assert "no new permissions" in quiet
    assert "- net: api.example.com" in quiet
    assert "updated widen 0.2.1 (revision 3;" in quiet

    rolled = ok(astrid(home, "capsule", "rollback", "widen", "--yes"))
    assert "rolled widen back to 0.2.0 (revision 2)" in rolled
    info = json.loads(ok(astrid(home, "capsule", "info", "widen", "--json")))
    assert info["record"]["version"] == "0.2.0"
    assert info["verified"] is True

    ok(astrid(home, "capsule", "remove", "widen", "--yes"))
    assert "widen" not in installed(home)
    assert not (home / "capsules" / "widen").exists()
    kinds = [entry["outcome"]["kind"] for entry in capsule_audit(home, "widen")]
    assert kinds == [
        "capsule_install",
        "capsule_update",
        "capsule_update",
        "capsule_rollback",
        "capsule_remove",
    ]


def test_secret_is_asked_at_install_and_never_stored_in_plaintext(
    home: Path, tmp_path: Path
) -> None:
    secret = "tok-very-secret-4242"
    source = static_capsule(
        tmp_path / "src",
        "secretive",
        extra='\n[env.API_TOKEN]\ndescription = "token for example.com"\nsecret = true\n',
    )
    out = ok(astrid(home, "capsule", "install", str(source), "--trust", stdin=secret + "\n"))
    assert "secret API_TOKEN (token for example.com): you will be asked for it" in out
    assert "secrets stored encrypted: API_TOKEN" in out
    assert secret not in out
    info = ok(astrid(home, "capsule", "info", "secretive"))
    assert "secret API_TOKEN (token for example.com): stored" in info
    assert "files match the recorded content hash" in info
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------------- compile and signatures


def test_signed_capsule_shows_its_publisher_and_a_tampered_one_is_refused(
    home: Path, tmp_path: Path
) -> None:
    source = static_capsule(tmp_path / "src", "signed-one", net='"api.example.com"')
    key = tmp_path / "publisher.key"
    ok(astrid(home, "capsule", "keygen", str(key)))
    public = key.with_name("publisher.key.pub")
    archive = tmp_path / "signed-one.capsule"
    compiled = ok(
        astrid(home, "capsule", "compile", str(source), "-o", str(archive), "--sign", str(key))
    )
    assert "compiled signed-one 0.1.0" in compiled

    stranger = ok(astrid(home, "capsule", "install", str(archive), "--dry-run"))
    assert "which is NOT one of your trusted publishers" in stranger
    assert "UNSIGNED" not in stranger

    publishers = home / "keys" / "publishers"
    publishers.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(public, publishers / "test-publisher.pub")
    try:
        out = json.loads(ok(astrid(home, "capsule", "install", str(archive), "--trust", "--json")))
        key_id = out["installed"]["publisher_key_id"]
        assert out["disclosure"]["publisher"] == {"signed": True, "key_id": key_id, "trusted": True}

        # Same signature, manifest widened after signing.
        tampered = tmp_path / "tampered.capsule"
        with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
            for member in src.getmembers():
                data = src.extractfile(member).read()  # type: ignore[union-attr]
                if member.name == "Capsule.toml":
                    data = data.replace(b'version = "0.1.0"', b'version = "0.1.1"')
                    data = data.replace(b'"api.example.com"', b'"api.example.com", "x.evil"')
                    member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
        refused = astrid(home, "capsule", "install", str(tampered), "--trust")
        assert refused.returncode == 1
        assert "does not describe this capsule" in refused.stderr
        listed = ok(astrid(home, "capsule", "list"))  # still the signed 0.1.0
        assert f"signed-one               0.1.0        rev 1   {key_id}" in listed
        assert list((home / "capsules").glob(".staging-*")) == []
    finally:
        (publishers / "test-publisher.pub").unlink()


def test_compile_check_names_the_bad_key(home: Path, tmp_path: Path) -> None:
    source = static_capsule(tmp_path / "src", "typo")
    manifest = source / "Capsule.toml"
    manifest.write_text(manifest.read_text().replace("net = []", 'fs_raed = ["x"]'))
    result = astrid(home, "capsule", "compile", str(source), "--check")
    assert result.returncode == 1
    assert "capabilities.fs_raed: unknown key (did you mean 'fs_read'?)" in result.stderr


def test_wasm_capsule_installs_and_a_swap_after_install_is_detected(
    home: Path, tmp_path: Path
) -> None:
    if not NOTES_WASM.exists():
        pytest.skip("notes_tool.wasm is not built (packages/astrid-capsule/wasm/build.sh)")
    source = tmp_path / "notes"
    source.mkdir()
    shutil.copyfile(NOTES_WASM, source / "notes_tool.wasm")
    (source / "Capsule.toml").write_text(
        '[package]\nname = "notes-wasm"\nversion = "0.1.0"\n\n'
        '[component]\nentrypoint = "notes_tool.wasm"\n\n'
        '[capabilities]\nfs_read = ["notes/**"]\nkv = true\n\n'
        '[[tool]]\nname = "read_note"\ndescription = "Read a note"\nexport = "read_note"\n'
    )
    archive = tmp_path / "notes.capsule"
    ok(astrid(home, "capsule", "compile", str(source), "-o", str(archive)))
    out = ok(astrid(home, "capsule", "install", str(archive), "--trust"))
    assert "read files (workspace): notes/**" in out
    assert "tools: read_note" in out
    assert "installed notes-wasm 0.1.0" in out

    wasm = home / "capsules" / "notes-wasm" / "1" / "notes_tool.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\0")  # someone edits the installed files
    info = astrid(home, "capsule", "info", "notes-wasm")
    assert info.returncode == 1
    assert "VERIFY FAILED" in info.stdout
    assert "hash mismatch" in info.stdout


def test_install_from_a_git_url_shows_the_pinned_commit(home: Path, tmp_path: Path) -> None:
    repo = static_capsule(tmp_path / "repo", "from-git", net='"api.example.com"')
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "--quiet"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "v1"], cwd=repo, check=True)
    subprocess.run([*git, "tag", "v1"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "v1"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    shown = ok(astrid(home, "capsule", "install", f"file://{repo}", "--ref", "v1", "--dry-run"))
    assert f"from git: file://{repo} at 'v1' = commit {commit}" in shown
    assert "dry run: nothing was installed" in shown
    refused = astrid(home, "capsule", "install", str(repo), "--ref", "v1")
    assert refused.returncode != 0
    assert "--ref applies to a git URL only" in refused.stderr


def test_seed_001_github_agent_disclosure_as_the_cli_shows_it(home: Path, tmp_path: Path) -> None:
    # Built by the examples' own build script, into a copy (the repository is not written).
    examples = Path(__file__).resolve().parents[3] / "examples" / "capsules"
    source = tmp_path / "examples" / "github-agent"
    shutil.copytree(examples / "github-agent", source, ignore=shutil.ignore_patterns("bin"))
    build = [str(examples / "build.sh"), str(source.parent)]
    subprocess.run(
        build, check=True, capture_output=True, env={**os.environ, "PYTHON": sys.executable}
    )
    shown = ok(astrid(home, "capsule", "install", str(source), "--dry-run"))
    for line in (
        "component: bin/github_agent.wasm BLAKE3 ",
        "(hashed now: the manifest gives no hash)",
        "UNSIGNED",
        "network hosts: api.github.com",
        "*** READ OUTSIDE THE WORKSPACE: /home/user/.gitconfig ***",
        "secret GITHUB_TOKEN (Please provide a GitHub Personal Access Token)",
        "runs an MCP server (untrusted, sandboxed) local-git: npx -y",
        "scheduled task sync-issues (0 * * * *): astrid.github.sync",
        "sees every BeforeToolCall event",
        "provides the model claude-3-5-sonnet",
        "dry run: nothing was installed",
    ):
        assert line in shown, line
