"""Installing a capsule from git, pinned to the commit that was reviewed.

``URL#REF`` (what ``astrid capsule install URL --ref REF`` sends the daemon) is cloned into a
temporary directory, ``REF`` (a tag, a branch or a commit; ``HEAD`` when none is given) is
resolved to a commit, that commit is checked out and the capsule is staged from it like any
directory. The trust record keeps URL, ref and commit: an update from the same URL and ref
that now resolves to another commit (a moved tag, a pushed branch) is shown as such and needs
trust again whatever ``[capsules] renew_trust`` says.

git is run with a fixed, minimal environment: only the https, ssh, git and file transports
(never ``ext::``, which runs commands), no user or system configuration, no prompts, no
submodules, and arguments that cannot be read as options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from astrid_core import BadInputError, ConfigError

from .install import GitSource

__all__ = ["parse_git_source", "checkout", "GIT_TIMEOUT_SECONDS"]

GIT_TIMEOUT_SECONDS = 120.0
_SCHEMES = ("https://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")  # git@host:owner/repo.git
_REF = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


def parse_git_source(source: str) -> tuple[str, str] | None:
    """``(url, ref)`` when ``source`` is a git URL (``URL`` or ``URL#REF``), else None (a path).
    Raises BadInputError for a git source that could be read as something else."""
    url, _, ref = source.partition("#")
    if not (url.startswith(_SCHEMES) or _SCP_LIKE.match(url)):
        return None
    ref = ref or "HEAD"
    if any(c.isspace() or ord(c) < 32 for c in url) or "::" in url:
        raise BadInputError(
            f"git source {url!r} is not a plain URL",
            hint="use an https://, ssh://, git:// or file:// URL, or git@host:path",
        )
    if not _REF.match(ref) or ref.startswith(("-", "/")) or ".." in ref or ref.endswith(".lock"):
        raise BadInputError(
            f"git ref {ref!r} is not a tag, branch or commit name",
            hint="pass --ref with a tag (v1.2.0), a branch (main) or a commit hash",
        )
    return url, ref


def _env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_ALLOW_PROTOCOL": "https:ssh:git:file",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_SSH_COMMAND": "ssh -oBatchMode=yes",
        "LC_ALL": "C",
    }


def _git(*args: str, cwd: Path | None = None) -> str:
    if shutil.which("git") is None:
        raise ConfigError("git is not installed", hint="install git to install capsules from git")
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS:g} s") from exc
    if done.returncode != 0:
        raise ConfigError(
            f"git {args[0]} failed: {done.stderr.strip()[:500]}",
            hint="check the URL and --ref (a tag, branch or commit of that repository)",
        )
    return done.stdout.strip()


def checkout(url: str, ref: str, into: Path) -> GitSource:
    """Clone ``url`` into ``into`` (a new directory), check out ``ref`` resolved to a commit,
    and drop the ``.git`` directory; the source it was taken from."""
    _git("clone", "--quiet", "--no-checkout", "--no-recurse-submodules", "--", url, str(into))
    commit = ""
    for candidate in (ref, f"origin/{ref}"):
        try:
            commit = _git(
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{candidate}^{{commit}}",
                cwd=into,
            )
            break
        except ConfigError:
            continue
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise ConfigError(
            f"{url} has no tag, branch or commit {ref!r}",
            hint="pass --ref with a tag, branch or commit of that repository",
        )
    _git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, cwd=into)
    shutil.rmtree(into / ".git")
    return GitSource(url=url, ref=ref, commit=commit)
