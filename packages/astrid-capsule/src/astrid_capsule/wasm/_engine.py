"""Loading and calling WASM capsules through extism.

Before a module is compiled its BLAKE3 hash is checked against the manifest (a capsule without
a hash is refused unless dev mode is explicit). The plugin gets exactly Astrid's host
functions, WASI only if declared, the memory ceiling and the per-call timeout. Calls run on a
worker thread so the event loop stays responsive; cancelling the caller cancels the plugin.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import extism
from extism.extism import CurrentPlugin, host_fn

from astrid_core import AstridError, AstridTimeoutError, BadInputError, VerificationError
from astrid_crypto import ContentHash, content_hash

from ._host import HOST_FUNCTION_NAMES, HostContext, dispatch
from ._limits import WasmLimits

__all__ = ["WasmCapsule", "CapsuleError", "load_wasm_bytes"]

log = logging.getLogger("astrid.capsule")

# Keep extism's compile cache out of $HOME (FIELD-NOTES).
os.environ.setdefault("EXTISM_CACHE_CONFIG", "")


class CapsuleError(AstridError):
    code = "capsule.error"
    default_hint = "check the capsule's manifest and files; `astrid capsule info NAME` shows them"


def _make_host_function(name: str) -> Any:
    # extism's Python SDK dispatches host calls through a process-global registry, so the 12
    # functions are registered once; each finds its per-call context via host_context().
    @host_fn(name=name, namespace="astrid", signature=([extism.ValType.I64], [extism.ValType.I64]))
    def call(plugin: CurrentPlugin, params: list[Any], results: list[Any], *user_data: Any) -> None:
        ctx = plugin.host_context()
        if not isinstance(ctx, HostContext):
            reply: dict[str, Any] = {"ok": False, "error": "host function called without context"}
        else:
            try:
                request = plugin.input_string(params[0])
            except UnicodeDecodeError:
                request = ""
            reply = dispatch(ctx, name, request)
        plugin.return_string(results[0], json.dumps(reply))

    return call


_HOST_FUNCTIONS = [_make_host_function(name) for name in HOST_FUNCTION_NAMES]


def _no_copy(buffer: Any) -> Any:
    # Keep extism's output buffer as is: its size is checked before we copy it.
    return buffer


def load_wasm_bytes(path: Path, expected_hash: str | None, *, dev_mode: bool) -> bytes:
    """Read a .wasm file and verify its BLAKE3 hash before anything parses it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CapsuleError(f"cannot read WASM module {path}: {exc.strerror}") from exc
    if expected_hash is None:
        if not dev_mode:
            raise VerificationError(
                f"WASM module {path.name} has no hash in its manifest",
                hint="run `astrid capsule compile` to record it, or load in explicit dev mode",
            )
        log.warning("dev mode: loading %s without a hash check", path)
        return data
    content_hash(data).verify_equals(
        ContentHash.from_hex(expected_hash), what=f"WASM module {path.name}"
    )
    return data


class WasmCapsule:
    """One loaded WASM component of a capsule."""

    def __init__(self, name: str, wasm: bytes, context: HostContext, *, wasi: bool = False) -> None:
        self.name = name
        self.context = context
        self.limits: WasmLimits = context.limits
        manifest: dict[str, Any] = {
            "wasm": [{"data": wasm}],
            "memory": {"max_pages": self.limits.max_pages},
            "timeout_ms": int(self.limits.timeout_seconds * 1000),
        }
        try:
            self._plugin: extism.Plugin | None = extism.Plugin(
                manifest, wasi=wasi, functions=_HOST_FUNCTIONS
            )
        except extism.Error as exc:
            raise CapsuleError(
                f"capsule {name}: the WASM module cannot be instantiated: {exc}",
                hint="it may import host functions Astrid does not provide, or WASI while "
                "the manifest does not declare it",
            ) from exc
        # An extism plugin instance is not re-entrant. The lock is a thread lock taken inside
        # the worker: after a cancelled call we return at once (and tell extism to stop), while
        # the abandoned worker may still be unwinding; the next call waits for it here.
        self._lock = threading.Lock()

    @property
    def _live(self) -> extism.Plugin:
        if self._plugin is None:
            raise CapsuleError(f"capsule {self.name} is closed")
        return self._plugin

    def exports(self, names: list[str]) -> list[str]:
        return [n for n in names if self._live.function_exists(n)]

    async def call(self, function: str, payload: bytes | str = b"") -> bytes:
        data = payload.encode() if isinstance(payload, str) else payload
        if len(data) > self.limits.payload_bytes:
            raise BadInputError(
                f"capsule {self.name}: input of {len(data)} bytes exceeds the "
                f"{self.limits.payload_bytes}-byte limit"
            )
        if not self._live.function_exists(function):
            raise CapsuleError(f"capsule {self.name} has no export named {function!r}")
        cancel = self._live.cancel_handle()
        try:
            return await anyio.to_thread.run_sync(
                self._call_blocking, function, data, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            cancel.cancel()
            raise

    def _call_blocking(self, function: str, data: bytes) -> bytes:
        with self._lock:
            return self._call_locked(function, data)

    def _call_locked(self, function: str, data: bytes) -> bytes:
        limit = self.limits.payload_bytes
        try:
            buffer = self._live.call(function, data, parse=_no_copy, host_context=self.context)
        except extism.Error as exc:
            text = str(exc)
            if "timeout" in text:
                raise AstridTimeoutError(
                    f"capsule {self.name}: {function} ran longer than "
                    f"{self.limits.timeout_seconds:g} s and was stopped",
                    hint="the WASM call was killed; nothing it had not already done happened",
                ) from exc
            if "oom" in text or "memory" in text:
                raise CapsuleError(
                    f"capsule {self.name}: {function} exceeded the "
                    f"{self.limits.memory_bytes // (1024 * 1024)} MiB memory ceiling",
                    code="capsule.memory",
                ) from exc
            raise CapsuleError(f"capsule {self.name}: {function} failed: {text}") from exc
        if len(buffer) > limit:
            raise CapsuleError(
                f"capsule {self.name}: {function} returned {len(buffer)} bytes, over the "
                f"{limit}-byte payload limit",
                code="capsule.payload",
            )
        return bytes(buffer)

    def close(self) -> None:
        if self._plugin is not None:
            self._plugin.__del__()
            self._plugin = None
