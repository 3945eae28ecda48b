"""Astrid's host functions for WASM capsules (seed 001's table) and the checks behind them.

Every gated call goes through three gates, in order, and each refusal is a clear error the
guest receives as ``{"ok": false, "error": ...}`` and is reported to ``on_denied`` (audit):
  1. declared: the manifest declared, and the user accepted, this kind of access;
  2. confined: the path resolves (``..``, symlinks) inside the workspace; the host is not a
     private, loopback, link-local or metadata address;
  3. authorized: the Guard (the SecurityInterceptor) allows the equivalent SensitiveAction —
     policy, capabilities, budget, approval and audit, exactly as for an agent tool call.

Host functions run on the worker thread that runs the plugin; they hop back to the event loop
with ``anyio.from_thread.run`` to call the async Guard and storage.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.from_thread

from astrid_core import (
    AstridError,
    BadInputError,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    Guard,
    NetworkRequest,
    SensitiveAction,
)
from astrid_core.storage import Storage
from astrid_crypto import content_hash
from astrid_workspace import fs

from ._grants import HostGrants
from ._limits import WasmLimits

__all__ = ["HostContext", "HostDenied", "HOST_FUNCTION_NAMES", "dispatch"]

log = logging.getLogger("astrid.capsule")

HOST_FUNCTION_NAMES = (
    "read_file",
    "write_file",
    "http_request",
    "fs_exists",
    "fs_mkdir",
    "fs_readdir",
    "fs_stat",
    "fs_unlink",
    "kv_get",
    "kv_set",
    "get_config",
    "log",
)
_MAX_LOG_BYTES = 4096
# Host time does not count against the WASM time limit, so each host function needs its own
# bound. httpx's timeout is per network operation (a server dripping a byte every few seconds
# never trips it); this bounds one http_request as a whole.
_HTTP_TIMEOUT_SECONDS = 10.0
_HTTP_TOTAL_SECONDS = 30.0
_KV_NAMESPACE = "capsule_kv"

DeniedHook = Callable[[str, str, SensitiveAction | None, str], Coroutine[Any, Any, None]]


class HostDenied(Exception):
    """A host call refused by one of the gates; the message goes back to the guest."""


@dataclass
class HostContext:
    capsule: str
    workspace: Path
    grants: HostGrants
    guard: Guard
    limits: WasmLimits
    storage: Storage | None = None
    on_denied: DeniedHook | None = None
    # Set per call by the engine: true once the call is being stopped (cancelled by its
    # caller). An approval can take minutes; what it approved must not run after that.
    stopping: Callable[[], bool] | None = None
    # The policy's hard-link check (SecurityPolicy.denied_link): a file that is another name
    # of a denied file is refused, judged on the file actually opened.
    denied_link: Callable[[os.stat_result], str | None] | None = None
    # The policy's denied paths (SecurityPolicy.denied_path): a folder listing leaves them out.
    denied_path: Callable[[str], str | None] | None = None

    def __post_init__(self) -> None:
        self.workspace = Path(os.path.realpath(self.workspace))

    # ------------------------------------------------------------------ gates

    def deny(self, function: str, reason: str, action: SensitiveAction | None = None) -> HostDenied:
        if self.on_denied is not None:
            anyio.from_thread.run(self.on_denied, self.capsule, function, action, reason)
        log.warning("capsule %s: %s refused: %s", self.capsule, function, reason)
        return HostDenied(reason)

    def authorize(self, function: str, action: SensitiveAction) -> None:
        reason = f"capsule {self.capsule} host call {function}"
        decision = anyio.from_thread.run(self.guard.authorize, action, reason)
        if not decision.allowed:
            # The Guard audited its own decision; no second record here.
            raise HostDenied(f"denied by {decision.denied_by or 'policy'}: {decision.reason}")
        if self.stopping is not None and self.stopping():
            raise HostDenied("the capsule call was stopped while this was being authorized")

    def confine(
        self, function: str, raw: object, *, write: bool, listing: bool = False
    ) -> tuple[Path, str]:
        """Resolve a guest path inside the workspace, or refuse. Returns (absolute, relative):
        relative to the workspace, or, for a file outside it that an absolute ``fs_read`` /
        ``fs_write`` entry grants, relative to ``/`` (see ``root_of``).
        ``listing``: the path is a folder to list, allowed when something in it is granted."""
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise self.deny(function, "path must be a non-empty string without NUL bytes")
        candidate = Path(raw) if os.path.isabs(raw) else self.workspace / raw
        # realpath resolves symlinks of the existing prefix and '..' lexically for the rest,
        # so a path to a file that does not exist yet is confined too.
        resolved = Path(os.path.realpath(candidate))
        try:
            relative = resolved.relative_to(self.workspace).as_posix()
        except ValueError:
            return resolved, self._outside(function, raw, resolved, write=write)
        relative = relative if relative != "." else ""
        if write:
            allowed = self.grants.can_write(relative)
        elif listing:
            allowed = self.grants.can_list(relative)
        else:
            allowed = self.grants.can_read(relative)
        if not allowed:
            kind = "fs_write" if write else "fs_read"
            raise self.deny(function, f"path {relative!r} is not in the capsule's declared {kind}")
        return resolved, relative

    def _outside(self, function: str, raw: str, resolved: Path, *, write: bool) -> str:
        """A path outside the workspace: allowed only as an absolute entry of the manifest
        that the user accepted, and never one of the admin's denied paths (``~/.ssh`` and the
        like), judged on the resolved path, whatever the capsule asked for."""
        absolute = resolved.as_posix()
        granted = (
            self.grants.can_write_absolute(absolute)
            if write
            else self.grants.can_read_absolute(absolute)
        )
        if not granted:
            raise self.deny(function, f"path {raw!r} resolves to {resolved}, outside the workspace")
        if self.denied_path is None:  # nothing to check the admin's denied paths against
            raise self.deny(
                function, f"{resolved} is outside the workspace (no denied-path policy)"
            )
        reason = self.denied_path(absolute)
        if reason is not None:
            raise self.deny(function, f"{resolved} is inside the denied path {reason}")
        return absolute.lstrip("/")

    def root_of(self, path: Path) -> Path:
        """The directory a confined path is reached beneath: the workspace, or ``/``."""
        return self.workspace if path.is_relative_to(self.workspace) else Path("/")


# ---------------------------------------------------------------------- file functions
#
# Confinement and authorization judge the resolved path; the file is then reached beneath a
# descriptor of the workspace with ``astrid_workspace.fs`` (openat2 RESOLVE_BENEATH |
# RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk): the resolved relative path has no symlink in
# it, so one that appears after the decision (a flipper, a link planted at a temporary name)
# is refused, never followed. Nothing here opens a file by name on its own.


@contextlib.contextmanager
def _root_fd(ctx: HostContext, path: Path) -> Generator[int]:
    fd = fs.open_root(str(ctx.root_of(path)))
    try:
        yield fd
    finally:
        os.close(fd)


def _link_check(ctx: HostContext, relative: str) -> Callable[[os.stat_result], None]:
    def check(info: os.stat_result) -> None:
        reason = ctx.denied_link(info) if ctx.denied_link is not None else None
        if reason is not None:
            raise HostDenied(f"{relative}: {reason}")

    return check


def _read_file(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("read_file", req.get("path"), write=False)
    ctx.authorize("read_file", FileRead(path=str(path)))
    limit = ctx.limits.payload_bytes
    with _root_fd(ctx, path) as root:
        try:
            data = fs.read_bytes(root, relative, limit, check=_link_check(ctx, relative))
        except BadInputError as exc:
            if "limit" in exc.message:
                raise HostDenied(f"file is over the {limit}-byte limit") from None
            raise
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _write_file(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("write_file", req.get("path"), write=True)
    content = req.get("content")
    if not isinstance(content, str):
        raise HostDenied("content must be a string")
    data = content.encode("utf-8")
    if len(data) > ctx.limits.payload_bytes:
        raise HostDenied(f"content is over the {ctx.limits.payload_bytes}-byte limit")
    # The content is part of the action: its size and hash are decided on and audited.
    action = FileWrite(
        path=str(path), content_bytes=len(data), content_blake3=content_hash(data).hex
    )
    ctx.authorize("write_file", action)
    with _root_fd(ctx, path) as root:
        fs.write_atomic(root, relative, data, check=_link_check(ctx, relative))
    return {"written": len(data)}


def _fs_exists(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("fs_exists", req.get("path"), write=False)
    ctx.authorize("fs_exists", FileRead(path=str(path)))
    with _root_fd(ctx, path) as root:
        return {"exists": fs.exists(root, relative)}


def _fs_stat(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("fs_stat", req.get("path"), write=False)
    ctx.authorize("fs_stat", FileRead(path=str(path)))
    with _root_fd(ctx, path) as root:
        info = fs.stat_beneath(root, relative)
    return {
        "size": info.st_size,
        "is_dir": stat.S_ISDIR(info.st_mode),
        "mtime": int(info.st_mtime),
    }


def _fs_readdir(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("fs_readdir", req.get("path", "."), write=False, listing=True)
    ctx.authorize("fs_readdir", DirectoryList(path=str(path)))
    with _root_fd(ctx, path) as root:
        names = [entry.name for entry in fs.list_dir(root, relative)]
    if ctx.denied_path is not None:
        check = ctx.denied_path
        names = [n for n in names if check(os.path.join(path, n)) is None]
    return {"entries": ctx.grants.visible(relative, names)[:10_000]}


def _fs_mkdir(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("fs_mkdir", req.get("path"), write=True)
    ctx.authorize("fs_mkdir", FileWrite(path=str(path)))
    with _root_fd(ctx, path) as root:
        fs.make_dirs(root, relative)
    return {"created": True}


def _fs_unlink(ctx: HostContext, req: dict[str, Any]) -> Any:
    path, relative = ctx.confine("fs_unlink", req.get("path"), write=True)
    ctx.authorize("fs_unlink", FileDelete(path=str(path)))
    with _root_fd(ctx, path) as root:
        fs.unlink(root, relative)
    return {"deleted": True}


# ---------------------------------------------------------------------- network


def _is_public(address: str) -> bool:
    # The one classifier every layer shares (IPv4-compatible, NAT64, 6to4 forms included).
    from astrid_core.net import is_public_ip

    try:
        return is_public_ip(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return False


def _http_request(ctx: HostContext, req: dict[str, Any]) -> Any:
    import httpx2

    url = req.get("url")
    method = str(req.get("method", "GET")).upper()
    if not isinstance(url, str):
        raise ctx.deny("http_request", "url must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ctx.deny("http_request", f"only http(s) URLs with a host are allowed: {url!r}")
    host = parts.hostname.lower()
    if not ctx.grants.can_reach(host):
        raise ctx.deny("http_request", f"host {host!r} is not in the capsule's declared net hosts")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise HostDenied(f"cannot resolve {host}: {exc}") from None
    blocked = sorted(a for a in addresses if not _is_public(str(a)))
    if blocked and not ctx.grants.allow_private_network:
        raise ctx.deny(
            "http_request", f"host {host} resolves to private/loopback/link-local {blocked}"
        )
    ctx.authorize("http_request", NetworkRequest(method=method, url=url))
    body = req.get("body")
    limit = ctx.limits.http_response_bytes
    # Redirects are returned to the guest, never followed: a redirect to an internal address
    # would otherwise skip every check above.
    # Pinned: httpx2 connects to the addresses checked above, never resolving the name again
    # (a second lookup could answer 127.0.0.1: DNS rebinding). TLS still verifies `host`.
    import httpcore2

    from astrid_workspace import Pin, PinnedSyncBackend, install_pin

    transport = httpx2.HTTPTransport()
    pin = Pin(host, tuple(sorted(str(a) for a in addresses)))
    install_pin(transport, PinnedSyncBackend(pin, httpcore2.SyncBackend(), httpcore2.ConnectError))
    client = httpx2.Client(
        transport=transport,
        follow_redirects=False,
        timeout=_HTTP_TIMEOUT_SECONDS,
        trust_env=False,
    )
    request_body = body if isinstance(body, str) else None
    headers = {"User-Agent": f"astrid-capsule/{ctx.capsule}"}
    deadline = time.monotonic() + _HTTP_TOTAL_SECONDS
    with client, client.stream(method, url, content=request_body, headers=headers) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise HostDenied(f"response exceeds the {limit}-byte limit")
            if time.monotonic() > deadline:
                raise HostDenied(f"response took longer than {_HTTP_TOTAL_SECONDS:g} s")
            chunks.append(chunk)
    data = b"".join(chunks)
    return {
        "status": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k.lower() in _SAFE_HEADERS},
        "body": data.decode("utf-8", errors="replace"),
    }


_SAFE_HEADERS = {"content-type", "content-length", "location", "etag", "last-modified"}


# ---------------------------------------------------------------------- kv, config, log


def _kv_key(ctx: HostContext, function: str, req: dict[str, Any]) -> str:
    if not ctx.grants.kv:
        raise ctx.deny(function, "the capsule did not declare kv storage")
    if ctx.storage is None:
        raise HostDenied("no storage is attached to this capsule")
    key = req.get("key")
    if not isinstance(key, str) or not key or len(key) > 256:
        raise HostDenied("key must be a string of 1-256 characters")
    return f"{ctx.capsule}/{key}"  # one namespace per capsule: capsules cannot read each other


def _kv_get(ctx: HostContext, req: dict[str, Any]) -> Any:
    key = _kv_key(ctx, "kv_get", req)
    assert ctx.storage is not None
    return {"value": anyio.from_thread.run(ctx.storage.get, _KV_NAMESPACE, key)}


def _kv_set(ctx: HostContext, req: dict[str, Any]) -> Any:
    key = _kv_key(ctx, "kv_set", req)
    assert ctx.storage is not None
    value = req.get("value")
    if value is None:
        anyio.from_thread.run(ctx.storage.delete, _KV_NAMESPACE, key)
        return {"deleted": True}
    if len(json.dumps(value)) > 1024 * 1024:
        raise HostDenied("kv values are limited to 1 MiB")
    anyio.from_thread.run(ctx.storage.put, _KV_NAMESPACE, key, value)
    return {"stored": True}


def _get_config(ctx: HostContext, req: dict[str, Any]) -> Any:
    key = req.get("key")
    if not isinstance(key, str):
        raise HostDenied("key must be a string")
    return {"value": ctx.grants.config.get(key)}


def _log(ctx: HostContext, req: dict[str, Any]) -> Any:
    message = str(req.get("message", ""))[:_MAX_LOG_BYTES]
    level = {"debug": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}.get(
        str(req.get("level", "info")), logging.INFO
    )
    logging.getLogger(f"astrid.capsule.{ctx.capsule}").log(level, "%s", message)
    return {}


_HANDLERS: dict[str, Callable[[HostContext, dict[str, Any]], Any]] = {
    "read_file": _read_file,
    "write_file": _write_file,
    "http_request": _http_request,
    "fs_exists": _fs_exists,
    "fs_mkdir": _fs_mkdir,
    "fs_readdir": _fs_readdir,
    "fs_stat": _fs_stat,
    "fs_unlink": _fs_unlink,
    "kv_get": _kv_get,
    "kv_set": _kv_set,
    "get_config": _get_config,
    "log": _log,
}


def dispatch(ctx: HostContext, function: str, request_text: str) -> dict[str, Any]:
    """Run one host call; never raises into the WASM runtime."""
    try:
        request = json.loads(request_text) if request_text else {}
        if not isinstance(request, dict):
            raise HostDenied("the request must be a JSON object")
        return {"ok": True, "value": _HANDLERS[function](ctx, request)}
    except HostDenied as exc:
        return {"ok": False, "error": str(exc)}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"ok": False, "error": "the request is not valid UTF-8 JSON"}
    except AstridError as exc:
        return {"ok": False, "error": exc.message}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    except Exception:  # a host bug must not crash the plugin call or leak a traceback
        log.exception("capsule %s: host function %s failed", ctx.capsule, function)
        return {"ok": False, "error": "internal host error"}
