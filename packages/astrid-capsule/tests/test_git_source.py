"""Installing from git is pinned to the reviewed commit: the trust record keeps URL, ref and
commit; a moved tag or branch needs trust again even when renew_trust = "on_widening"; URLs
and refs that git could read as options or command transports are refused. Uses a real local
repository (file://) and the real git."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import AuditLog
from astrid_capsule.admin import CapsuleAdmin
from astrid_capsule.git import parse_git_source
from astrid_capsule.install import TrustRequired
from astrid_core import BadInputError, ConfigError
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio

MANIFEST = """[package]
name = "greeter"
version = "{version}"

[capabilities]
net = ["api.example.com"]

[[skill]]
name = "greet"
content = "Say hello."
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "Capsule.toml").write_text(MANIFEST.format(version="1.0.0"))
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "v1")
    git(repo, "tag", "v1")
    return repo


async def admin_for(home: Path) -> CapsuleAdmin:
    storage = MemoryStorage()
    audit = await AuditLog.open(storage, KeyPair.generate())
    return CapsuleAdmin(home, storage, audit, renew_trust="on_widening")


async def plan(admin: CapsuleAdmin, source: str) -> tuple[str, dict[str, Any]]:
    planned: dict[str, Any] = dict(await admin.plan(source))
    return planned["plan_id"], planned["disclosure"]


async def test_a_git_install_records_the_commit_its_ref_resolved_to(tmp_path: Path) -> None:
    repo = repository(tmp_path)
    commit = git(repo, "rev-parse", "v1")
    admin = await admin_for(tmp_path / "home")
    plan_id, disclosure = await plan(admin, f"file://{repo}#v1")
    assert disclosure["source"] == {"git": f"file://{repo}", "ref": "v1", "commit": commit}
    assert f"at 'v1' = commit {commit}" in disclosure["text"]
    result = await admin.commit(plan_id, "flag", "cli:test")
    record: Any = result["record"]
    assert (record["source_url"], record["source_ref"], record["source_commit"]) == (
        f"file://{repo}",
        "v1",
        commit,
    )
    installed = admin.installer.path_of(await admin.installer.require("greeter"))
    assert not (installed / ".git").exists()  # the checkout, not the repository


async def test_a_moved_tag_needs_trust_again_even_without_new_permissions(tmp_path: Path) -> None:
    repo = repository(tmp_path)
    admin = await admin_for(tmp_path / "home")
    plan_id, _ = await plan(admin, f"file://{repo}#v1")
    await admin.commit(plan_id, "flag", "cli:test")
    old = git(repo, "rev-parse", "v1")

    # Same permissions, same ref: nothing moved, no trust asked (on_widening).
    plan_id, same = await plan(admin, f"file://{repo}#v1")
    assert same["needs_trust"] is False
    await admin.discard(plan_id)

    # The tag is moved to other content with the same permissions.
    (repo / "Capsule.toml").write_text(MANIFEST.format(version="1.0.0") + "# changed\n")
    git(repo, "commit", "--quiet", "-am", "moved")
    git(repo, "tag", "-f", "v1")
    new = git(repo, "rev-parse", "v1")
    plan_id, moved = await plan(admin, f"file://{repo}#v1")
    assert moved["widened"] == []
    assert f"git ref 'v1' moved: {old} -> {new}" in moved["changed"]
    assert moved["needs_trust"] is True
    with pytest.raises(TrustRequired):
        await admin.commit(plan_id, None, "cli:test")
    assert (await admin.installer.require("greeter")).source_commit == old


async def test_a_branch_and_a_commit_resolve_and_an_unknown_ref_is_an_error(
    tmp_path: Path,
) -> None:
    repo = repository(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    admin = await admin_for(tmp_path / "home")
    for ref in ("main", head, "HEAD"):
        plan_id, d = await plan(admin, f"file://{repo}#{ref}")
        assert d["source"]["commit"] == head
        await admin.discard(plan_id)
    with pytest.raises(ConfigError, match="has no tag, branch or commit 'nope'"):
        await plan(admin, f"file://{repo}#nope")


@pytest.mark.parametrize(
    "source",
    [
        "file:///tmp/repo#--upload-pack=touch /tmp/pwned",
        "file:///tmp/repo#-oProxyCommand=x",
        "file:///tmp/repo#../../etc",
        "https://example.com/x\n--upload-pack=y#v1",
        "https://example.com/ext::sh#v1",
    ],
)
def test_refs_and_urls_git_could_read_as_options_are_refused(source: str) -> None:
    with pytest.raises(BadInputError):
        parse_git_source(source)


async def test_command_transports_are_not_git_sources(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    admin = await admin_for(tmp_path / "home")
    assert parse_git_source(f"ext::sh -c touch% {pwned}") is None  # not a URL: a path
    with pytest.raises(BadInputError, match="not an absolute path"):
        await admin.plan(f"ext::sh -c touch% {pwned}")
    assert not pwned.exists()
