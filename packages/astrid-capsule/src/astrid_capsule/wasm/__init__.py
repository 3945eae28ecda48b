"""The WASM engine of capsules: extism plugins with Astrid's gated host functions."""

from ._engine import CapsuleError, WasmCapsule, load_wasm_bytes
from ._grants import HostGrants
from ._host import HOST_FUNCTION_NAMES, HostContext
from ._limits import MAX_MEMORY_BYTES, MAX_PAYLOAD_BYTES, MAX_TIMEOUT_SECONDS, WasmLimits

__all__ = [
    "WasmCapsule",
    "CapsuleError",
    "load_wasm_bytes",
    "HostGrants",
    "HostContext",
    "HOST_FUNCTION_NAMES",
    "WasmLimits",
    "MAX_MEMORY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TIMEOUT_SECONDS",
]
