"""Hard limits of the WASM engine. Configurable down, never up."""

from __future__ import annotations

from dataclasses import dataclass

from astrid_core import ConfigError

__all__ = ["WasmLimits", "MAX_MEMORY_BYTES", "MAX_TIMEOUT_SECONDS", "MAX_PAYLOAD_BYTES"]

MAX_MEMORY_BYTES = 64 * 1024 * 1024
MAX_TIMEOUT_SECONDS = 30.0
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_HTTP_RESPONSE_BYTES = 5 * 1024 * 1024
_PAGE = 64 * 1024


@dataclass(frozen=True, slots=True)
class WasmLimits:
    memory_bytes: int = MAX_MEMORY_BYTES
    timeout_seconds: float = MAX_TIMEOUT_SECONDS
    payload_bytes: int = MAX_PAYLOAD_BYTES
    http_response_bytes: int = MAX_HTTP_RESPONSE_BYTES

    def __post_init__(self) -> None:
        for name, value, ceiling in (
            ("memory_bytes", self.memory_bytes, MAX_MEMORY_BYTES),
            ("timeout_seconds", self.timeout_seconds, MAX_TIMEOUT_SECONDS),
            ("payload_bytes", self.payload_bytes, MAX_PAYLOAD_BYTES),
            ("http_response_bytes", self.http_response_bytes, MAX_HTTP_RESPONSE_BYTES),
        ):
            if value <= 0 or value > ceiling:
                raise ConfigError(
                    f"WASM limit {name}={value} is outside (0, {ceiling}]",
                    hint="WASM limits can be lowered but never raised above the built-in ceiling",
                )

    @property
    def max_pages(self) -> int:
        return max(1, self.memory_bytes // _PAGE)
