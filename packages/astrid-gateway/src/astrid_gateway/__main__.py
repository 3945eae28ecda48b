"""``python -m astrid_gateway`` / ``astridd``: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from functools import partial
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from astrid_core import AstridError, ConfigError

from ._state import StatePaths, state_dir

if TYPE_CHECKING:
    from .daemon import Companion


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="astridd",
        description="The Astrid daemon: hosts the agent runtime and serves frontends over "
        "JSON-RPC 2.0 / WebSocket on 127.0.0.1.",
        epilog="example: astridd --ephemeral   (exits 30 s after the last client leaves)",
    )
    parser.add_argument("--state-dir", help="state directory (default: $ASTRID_HOME or ~/.astrid)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: [gateway] port; 0 = OS-chosen)"
    )
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="exit when no client has been connected for a while",
    )
    parser.add_argument(
        "--idle-grace",
        type=float,
        default=None,
        help="ephemeral idle time in seconds (default: [gateway] ephemeral_idle_seconds, 30)",
    )
    parser.add_argument(
        "--log-level", default=None, help="log level (default: [logging] level, INFO)"
    )
    parser.add_argument(
        "--log-file",
        default=None,
        help="log to this file, rotated by [logging] max_bytes / backups (default: stderr); "
        "stdout and stderr are closed once the daemon listens",
    )
    return parser.parse_args(argv)


log = logging.getLogger("astrid.gateway")


def _gateway_settings(paths: StatePaths) -> tuple[int, float, bool]:
    """[gateway] port, ephemeral_idle_seconds, allow_remote; the defaults when the config
    cannot be read (the runtime reports that problem itself, a moment later)."""
    try:
        from astrid_runtime.config import load_config

        section = load_config(paths.root).config.gateway
        return section.port, section.ephemeral_idle_seconds, section.allow_remote
    except (ImportError, AstridError):
        return 0, 30.0, False


def _logging_settings(paths: StatePaths) -> tuple[str, int, int]:
    """[logging] level, max_bytes, backups; the defaults when the config cannot be read (the
    runtime reports that problem itself, a moment later)."""
    try:
        from astrid_runtime.config import load_config

        section = load_config(paths.root).config.logging
        return section.level, section.max_bytes, section.backups
    except (ImportError, AstridError):
        return "INFO", 10 * 1024 * 1024, 3


def _configure_logging(args: argparse.Namespace, paths: StatePaths) -> None:
    level, max_bytes, backups = _logging_settings(paths)
    handler: logging.Handler
    if args.log_file:
        if Path(args.log_file).parent == paths.logs:
            paths.ensure_logs()
        handler = RotatingFileHandler(
            args.log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((args.log_level or level).upper())


def _report(exc: AstridError) -> None:
    """The fatal error, in the log and on stderr in a form the CLI reads back."""
    log.error("astridd stopped: %s", exc)
    with contextlib.suppress(OSError):
        for line in exc.message.splitlines() or [""]:
            print(f"astridd: error: {line}", file=sys.stderr)
        if exc.hint:
            print(f"astridd: hint: {exc.hint}", file=sys.stderr)
        sys.stderr.flush()


def _first_astrid_error(group: BaseExceptionGroup[BaseException]) -> AstridError | None:
    for exc in group.exceptions:
        if isinstance(exc, AstridError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_astrid_error(exc)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


COMPANIONS_GROUP = "astrid.daemon_companions"


def installed_companions() -> list[Companion]:
    """Companions installed packages declare under the ``astrid.daemon_companions`` entry-point
    group (the Telegram frontend declares its embedded bot there).

    Found this way, and not passed in by whoever starts the daemon, they run wherever a daemon
    starts: ``astridd``, ``astrid daemon run`` and the CLI's auto-started daemon alike. One that
    cannot be loaded is logged and skipped; the daemon still starts.
    """
    from importlib.metadata import entry_points

    found: list[Companion] = []
    for entry in sorted(entry_points(group=COMPANIONS_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except Exception:
            log.exception("daemon companion %s (%s) could not be loaded", entry.name, entry.value)
    return found


def main(argv: list[str] | None = None, companions: Sequence[Companion] | None = None) -> int:
    """Run the daemon; ``companions`` default to the installed ones (``installed_companions``)."""
    args = _parse(argv)
    paths = StatePaths(state_dir(args.state_dir))
    try:
        _configure_logging(args, paths)
        port, idle_grace, allow_remote = _gateway_settings(paths)
        if allow_remote:
            raise ConfigError(
                "[gateway] allow_remote = true is refused: astridd serves no TLS, and the "
                "daemon protocol must not cross a network in clear",
                hint="remove [gateway] allow_remote; reach a daemon on another machine through "
                "an SSH tunnel (ssh -L PORT:127.0.0.1:PORT host) with [gateway] port set there",
            )
        if companions is None:
            companions = installed_companions()
        from .daemon import run_daemon  # heavy imports only once we are really starting

        anyio.run(
            partial(run_daemon, detach_stdio=bool(args.log_file)),
            paths,
            port if args.port is None else args.port,
            args.ephemeral,
            idle_grace if args.idle_grace is None else args.idle_grace,
            companions,
        )
    except AstridError as exc:
        _report(exc)
        return 2
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        found = _first_astrid_error(group)
        if found is None:
            log.exception("astridd crashed")
            raise
        _report(found)
        return 2
    except Exception:
        log.exception("astridd crashed")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
