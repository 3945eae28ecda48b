"""The daemon log cannot be used to fill the disk: failed handshakes are summarised, and
``astridd.log`` rotates by ``[logging] max_bytes`` / ``backups`` at ``[logging] level``."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from astrid_gateway.__main__ import _configure_logging  # pyright: ignore[reportPrivateUsage]
from astrid_gateway._ratelog import RateLimitedLog
from astrid_gateway._state import StatePaths
from astrid_gateway.client import GatewayClient

from .conftest import spawn_daemon

_UPGRADE_WITHOUT_NONCE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.anyio
async def test_handshake_flood_keeps_the_log_small(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log_file = home / "logs" / "flood.log"
    daemon = spawn_daemon(home, "--log-file", str(log_file))
    try:
        port = daemon.port
        limit = anyio.Semaphore(32)
        refused = 0

        async def one() -> None:
            nonlocal refused
            async with limit:
                stream = await anyio.connect_tcp("127.0.0.1", port)
                async with stream:
                    await stream.send(_UPGRADE_WITHOUT_NONCE)
                    with anyio.fail_after(10):
                        reply = await stream.receive()
                    if reply.startswith(b"HTTP/1.1 401"):
                        refused += 1

        started = time.monotonic()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for _ in range(2000):
                    tg.start_soon(one)
        assert refused == 2000
        # Every handshake was refused, yet the log grew by a few lines, not 2,000.
        async with await GatewayClient.open(home, autostart=False) as client:
            await client.call("status")
        text = log_file.read_text()
        assert log_file.stat().st_size < 8 * 1024, text[-2000:]
        assert text.count("failed handshakes: no client nonce") == 5
        assert "further failed handshakes in the next 60 s are only counted" in text
        assert time.monotonic() - started < 120
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=15)


def test_summary_line_after_the_window() -> None:
    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.ratelog")
    logger.propagate = False
    handler = Collect()
    logger.addHandler(handler)
    try:
        limiter = RateLimitedLog(logger, "failed handshakes", clock=lambda: now[0])
        for i in range(1000):
            now[0] = i * 0.01  # 1,000 failures in 10 s
            limiter.note(f"attempt {i}")
        assert len(records) == 6  # five in full, one "only counted"
        now[0] = 61.0
        limiter.flush()
        assert records[-1] == "1000 failed handshakes in the last 60 s"
        limiter.note("a new window")
        assert records[-1] == "failed handshakes: a new window"
        assert limiter.total == 1001
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_log_rotates_by_config_and_honours_level(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(
        '[logging]\nlevel = "WARNING"\nmax_bytes = 65536\nbackups = 2\n'
    )
    paths = StatePaths(home)
    args = argparse.Namespace(log_file=str(paths.log), log_level=None)
    _configure_logging(args, paths)
    log = logging.getLogger("astrid.gateway.test")
    log.info("info lines are below [logging] level")
    for i in range(2000):  # ~250 KB of warnings
        log.warning("line %05d %s", i, "x" * 100)
    files = sorted(p.name for p in paths.logs.iterdir())
    assert files == ["astridd.log", "astridd.log.1", "astridd.log.2"]
    for name in files:
        assert (paths.logs / name).stat().st_size <= 65536
    assert "line 01999" in paths.log.read_text()
    assert "below [logging] level" not in "".join((paths.logs / n).read_text() for n in files)
    assert oct(paths.logs.stat().st_mode & 0o777) == "0o700"
