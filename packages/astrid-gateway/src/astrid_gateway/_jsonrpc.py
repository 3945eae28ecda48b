"""JSON-RPC 2.0 framing: parse one frame, build responses, map errors to codes.

Everything that can go wrong with a frame becomes a JSON-RPC error response; nothing here
raises past the connection handler, so a hostile client cannot kill the daemon.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from pydantic import JsonValue

from astrid_core import (
    AstridError,
    AstridTimeoutError,
    BadInputError,
    BudgetDenied,
    ConfigError,
    JsonObject,
    NotFoundError,
    SecurityDenied,
    StorageError,
    VerificationError,
)

from .protocol import MAX_FRAME_BYTES, ErrorCode

__all__ = ["RpcRequest", "RpcError", "parse_frame", "result_frame", "error_frame", "error_for"]

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class RpcRequest:
    id: RequestId
    method: str
    params: JsonObject
    is_notification: bool


class RpcError(Exception):
    """An error that becomes a JSON-RPC error response."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        data: Mapping[str, JsonValue] | None = None,
        request_id: RequestId = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id


def parse_frame(frame: str | bytes) -> RpcRequest:
    if len(frame) > MAX_FRAME_BYTES:
        raise RpcError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"message of {len(frame)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit",
        )
    try:
        obj = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RpcError(ErrorCode.PARSE_ERROR, f"invalid JSON: {exc}") from None
    if isinstance(obj, list):
        raise RpcError(ErrorCode.INVALID_REQUEST, "batch requests are not supported")
    if not isinstance(obj, dict):
        raise RpcError(ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
    request_id = obj.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, int | str)
    ):
        raise RpcError(ErrorCode.INVALID_REQUEST, "id must be a string, an integer or absent")
    if obj.get("jsonrpc") != "2.0":
        raise RpcError(ErrorCode.INVALID_REQUEST, 'missing "jsonrpc": "2.0"', request_id=request_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(
            ErrorCode.INVALID_REQUEST, "method must be a non-empty string", request_id=request_id
        )
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(
            ErrorCode.INVALID_PARAMS,
            "params must be an object (named parameters)",
            request_id=request_id,
        )
    return RpcRequest(request_id, method, cast(JsonObject, params), "id" not in obj)


def result_frame(request_id: RequestId, result: JsonValue) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def error_frame(error: RpcError) -> str:
    body: JsonObject = {"code": int(error.code), "message": error.message}
    if error.data is not None:
        body["data"] = dict(error.data)
    return json.dumps({"jsonrpc": "2.0", "id": error.request_id, "error": body})


_ASTRID_CODES: tuple[tuple[type[AstridError], ErrorCode], ...] = (
    (BudgetDenied, ErrorCode.BUDGET_EXCEEDED),
    (SecurityDenied, ErrorCode.SECURITY_DENIED),
    (VerificationError, ErrorCode.VERIFICATION_FAILED),
    (NotFoundError, ErrorCode.NOT_FOUND),
    (BadInputError, ErrorCode.INVALID_PARAMS),
    (ConfigError, ErrorCode.CONFIG_ERROR),
    (StorageError, ErrorCode.STORAGE_ERROR),
    (AstridTimeoutError, ErrorCode.TIMEOUT),
)


def error_for(exc: AstridError, request_id: RequestId) -> RpcError:
    """Map an AstridError to its JSON-RPC code, keeping Astrid's code and hint as data."""
    code = ErrorCode.INTERNAL_ERROR
    for error_type, rpc_code in _ASTRID_CODES:
        if isinstance(exc, error_type):
            code = rpc_code
            break
    return RpcError(code, exc.message, data=exc.to_dict(), request_id=request_id)
