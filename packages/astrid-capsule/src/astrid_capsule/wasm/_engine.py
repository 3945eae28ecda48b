"""Loading and calling WASM capsules through extism.

Before a module is compiled its BLAKE3 hash is checked against the manifest (a capsule without
a hash is refused unless dev mode is explicit). The plugin gets exactly Astrid's host
functions, WASI only if declared, the memory ceiling and the per-call time limit. Calls run on
a worker thread so the event loop stays responsive; cancelling the caller cancels the plugin.

The time limit counts WASM time only (``_clock``): a call waiting inside a host function for an
approval is not killed for it. extism's own ``timeout_ms`` (wall clock for the whole call) is
not set, deliberately: every host function is bounded on its own (the Guard's approval
timeout, the HTTP timeouts and total deadline, local file and storage work), the caller's
cancellation stops the plugin, and the watchdog stops WASM that runs too long.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import extism
from extism.extism import CurrentPlugin, host_fn

from astrid_core import AstridError, AstridTimeoutError, BadInputError, VerificationError
from astrid_crypto import ContentHash, content_hash, write_private_file

from ..errors import CapsuleError
from ._clock import CallClock
from ._host import HOST_FUNCTION_NAMES, HostContext, dispatch
from ._limits import WasmLimits

__all__ = ["WasmCapsule", "CapsuleError", "load_wasm_bytes"]

log = logging.getLogger("astrid.capsule")


def compile_cache_config(home: str | None = None) -> str:
    """wasmtime's compile cache for capsules, in ``$ASTRID_HOME/cache/wasmtime``, or "" (off).

    Without it every new instance of a capsule is compiled again by Cranelift (seconds for a
    2 MB module such as a compiled OpenClaw plugin); with it a module compiled once loads in
    milliseconds. The cache holds native code that wasmtime loads as it is, so it must be as
    private as the runtime key beside it: used only when ``$ASTRID_HOME`` already exists (a
    library user gets no folder made for them) and the cache folder is a real directory of
    ours that nobody else can write; otherwise the cache stays off, as it was.
    """
    home = home or os.environ.get("ASTRID_HOME") or os.path.join(os.path.expanduser("~"), ".astrid")
    root = Path(home)
    if not root.is_dir():
        return ""
    cache = root / "cache" / "wasmtime"
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (cache.parent, cache):
            info = os.lstat(folder)
            if (
                not stat.S_ISDIR(info.st_mode)
                or info.st_uid != os.geteuid()
                or info.st_mode & 0o022
            ):
                return ""
        config = cache.parent / "wasmtime.toml"
        text = f"[cache]\ndirectory = {json.dumps(str(cache))}\n"
        if not config.is_file() or config.is_symlink() or config.read_text() != text:
            write_private_file(config, text.encode(), replace=True)
        return str(config)
    except OSError:
        return ""


# Set before the first plugin is built: extism reads it once (FIELD-NOTES). "" turns it off.
os.environ.setdefault("EXTISM_CACHE_CONFIG", compile_cache_config())


@dataclass(frozen=True)
class _CallContext:
    """What a host function of one call needs: the capsule's context and the call's clock."""

    host: HostContext
    clock: CallClock


def _make_host_function(name: str) -> Any:
    # extism's Python SDK dispatches host calls through a process-global registry, so the 12
    # functions are registered once; each finds its per-call context via host_context().
    @host_fn(name=name, namespace="astrid", signature=([extism.ValType.I64], [extism.ValType.I64]))
    def call(plugin: CurrentPlugin, params: list[Any], results: list[Any], *user_data: Any) -> None:
        ctx = plugin.host_context()
        if not isinstance(ctx, _CallContext):
            reply: dict[str, Any] = {"ok": False, "error": "host function called without context"}
        elif not ctx.clock.enter_host():
            # The call is being stopped: nothing more may happen on its behalf.
            reply = {"ok": False, "error": "the capsule call is being stopped"}
        else:
            try:
                try:
                    request = plugin.input_string(params[0])
                except UnicodeDecodeError:
                    request = ""
                reply = dispatch(ctx.host, name, request)
            except BaseException:
                # Nothing may propagate into the WASM runtime. This is the caller cancelled
                # while the host call awaited the event loop (the Guard, storage): that work
                # is cancelled with it, and so is this host call.
                reply = {"ok": False, "error": "the capsule call was cancelled"}
            finally:
                ctx.clock.leave_host()
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
        self._wasm = wasm
        self._wasi = wasi
        self._plugin: extism.Plugin | None = self._instantiate()
        # An extism plugin instance is not re-entrant. The lock is a thread lock taken inside
        # the worker: after a cancelled call we return at once (and tell extism to stop), while
        # the abandoned worker may still be unwinding; the next call waits for it here.
        self._lock = threading.Lock()
        # Guards the three fields below, shared between the worker and close().
        self._state = threading.Lock()
        self._running: CallClock | None = None
        self._closing = False
        # A call that was sent a cancel leaves the instance to be replaced before the next call:
        # the cancel may still be in flight (see _clock), and WASM interrupted mid-way may have
        # left its memory half-updated.
        self._stale = False

    def _instantiate(self) -> extism.Plugin:
        manifest: dict[str, Any] = {
            "wasm": [{"data": self._wasm}],
            "memory": {"max_pages": self.limits.max_pages},
        }
        try:
            # Each Plugin compiles into its own wasmtime engine: a cancel meant for an old
            # instance can never interrupt its replacement.
            return extism.Plugin(manifest, wasi=self._wasi, functions=_HOST_FUNCTIONS)
        except extism.Error as exc:
            raise CapsuleError(
                f"capsule {self.name}: the WASM module cannot be instantiated: {exc}",
                hint="it may import host functions Astrid does not provide, or WASI while "
                "the manifest does not declare it",
            ) from exc

    @property
    def _live(self) -> extism.Plugin:
        if self._plugin is None or self._closing:
            raise CapsuleError(f"capsule {self.name} is closed")
        return self._plugin

    def exports(self, names: list[str]) -> list[str]:
        # Under the call lock: function_exists resets the plugin's error, which must not
        # happen during a call. Meant for load time, before any call runs.
        with self._lock:
            return [n for n in names if self._live.function_exists(n)]

    async def call(self, function: str, payload: bytes | str = b"") -> bytes:
        data = payload.encode() if isinstance(payload, str) else payload
        if len(data) > self.limits.payload_bytes:
            raise BadInputError(
                f"capsule {self.name}: input of {len(data)} bytes exceeds the "
                f"{self.limits.payload_bytes}-byte limit"
            )
        clock = CallClock(self.limits.timeout_seconds)
        try:
            return await anyio.to_thread.run_sync(
                self._call_blocking, function, data, clock, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            clock.cancel()
            raise

    def _call_blocking(self, function: str, data: bytes, clock: CallClock) -> bytes:
        with self._lock:
            with self._state:
                self._running = clock  # from here close() leaves freeing the plugin to us
                closing = self._closing
            try:
                if closing:
                    raise CapsuleError(f"capsule {self.name} is closed")
                return self._call_locked(function, data, clock)
            finally:
                with self._state:
                    self._running = None
                    if self._closing:
                        self._free()

    def _call_locked(self, function: str, data: bytes, clock: CallClock) -> bytes:
        if self._stale:
            self._free()
            self._plugin = self._instantiate()
            self._stale = False
        plugin = self._live
        if not plugin.function_exists(function):
            raise CapsuleError(f"capsule {self.name} has no export named {function!r}")
        if not clock.start(plugin.cancel_handle().cancel):
            raise CapsuleError(f"capsule {self.name}: {function} was cancelled before it ran")
        try:
            host = copy.copy(self.context)  # this call's own: it knows when to stop
            host.stopping = clock.stopping
            context = _CallContext(host, clock)
            buffer = plugin.call(function, data, parse=_no_copy, host_context=context)
        except extism.Error as exc:
            raise self._failure(function, str(exc), clock) from exc
        finally:
            clock.stop()
            self._stale = self._stale or clock.cancel_sent
        limit = self.limits.payload_bytes
        if len(buffer) > limit:
            raise CapsuleError(
                f"capsule {self.name}: {function} returned {len(buffer)} bytes, over the "
                f"{limit}-byte payload limit",
                code="capsule.payload",
            )
        return bytes(buffer)

    def _failure(self, function: str, text: str, clock: CallClock) -> AstridError:
        # Only our clock interrupts a call (no extism timeout is set), and the error text does
        # not say so reliably: "timeout" usually, but empty when the interrupt lands inside
        # the kernel allocation of a host function's reply. So the clock decides.
        if clock.cancelled and not clock.expired:
            return CapsuleError(f"capsule {self.name}: {function} was cancelled")
        if clock.expired:
            return AstridTimeoutError(
                f"capsule {self.name}: {function} ran longer than "
                f"{self.limits.timeout_seconds:g} s and was stopped",
                hint="the WASM call was killed; nothing it had not already done happened "
                "(time spent waiting in host calls, such as for an approval, does not count)",
            )
        if "oom" in text or "memory" in text:
            return CapsuleError(
                f"capsule {self.name}: {function} exceeded the "
                f"{self.limits.memory_bytes // (1024 * 1024)} MiB memory ceiling",
                code="capsule.memory",
            )
        return CapsuleError(f"capsule {self.name}: {function} failed: {text}")

    def _free(self) -> None:
        if self._plugin is not None:
            self._plugin.__del__()
            self._plugin = None

    def close(self) -> None:
        """Free the plugin; a call still running is stopped and frees it when it returns."""
        with self._state:
            self._closing = True
            running = self._running
            if running is None:
                self._free()  # no worker is between its two _state sections: nobody uses it
        if running is not None:
            running.cancel()
