"""Attacks on $ASTRID_HOME/cache (the native launcher, the /etc copy), with real bubblewrap.

The attacker is another local user who got write access to the cache directory before the
daemon used it (``ASTRID_HOME=/tmp/astrid`` they pre-created, a ``chmod 777``): the copy's
name ``etc-<hash>`` is computable from ``stat`` of public /etc files, so they can plant one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from astrid_workspace import Confinement, confined_argv, scrubbed_environment

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def _plant_etc(cache: Path) -> None:
    from astrid_workspace import _etc

    planted = cache / f"etc-{_etc._signature(_etc._entries())}"  # pyright: ignore[reportPrivateUsage]
    shutil.copytree("/etc/ssl/certs", planted / "ssl" / "certs", symlinks=True)
    for name in ("passwd", "group", "nsswitch.conf", "ld.so.cache"):
        if os.path.exists(f"/etc/{name}"):
            shutil.copy2(f"/etc/{name}", planted / name)
    (planted / "hosts").write_text("203.0.113.66 planted-by-attacker\n")


@pytest.mark.parametrize("weakness", ["world-writable", "owned-by-another-user"])
def test_a_planted_etc_copy_in_a_cache_others_can_write_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weakness: str
) -> None:
    home = tmp_path / "astrid"
    cache = home / "cache"
    cache.mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    _plant_etc(cache)
    if weakness == "world-writable":
        cache.chmod(0o777)
    else:
        os.chown(cache, 65534, 65534)
    monkeypatch.setenv("ASTRID_HOME", str(home))
    ws = tmp_path / "ws"
    ws.mkdir()
    argv = confined_argv(
        "/bin/sh",
        ["-c", "cat /etc/hosts"],
        Confinement(workspace=str(ws), network="none"),
        cwd=str(ws),
    )
    proc = subprocess.run(
        argv, env=scrubbed_environment(), capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "planted-by-attacker" not in proc.stdout
    assert "/run/astrid-launcher" not in argv  # nor is a launcher from that cache run


def test_the_cache_check_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from astrid_workspace import _native

    home = tmp_path / "astrid"
    (home / "cache").mkdir(parents=True)
    home.chmod(0o700)
    (home / "cache").chmod(0o777)
    monkeypatch.setenv("ASTRID_HOME", str(home))
    monkeypatch.delenv("ASTRID_SANDBOX_LAUNCHER", raising=False)
    assert _native.native_launcher() is None
    assert "writable by us alone" in _native.native_status()
    assert "chmod 700" in _native.native_status()
