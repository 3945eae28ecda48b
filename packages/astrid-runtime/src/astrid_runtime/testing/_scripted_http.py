"""What every scripted fake API server shares: a script of responses consumed in order, a
record of every request, and an HTTP server on 127.0.0.1 (OS-chosen port) served from a
daemon thread. Each fake adds its own wire format in its request handler."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

__all__ = ["ScriptState", "ScriptedHttpServer", "ScriptedHandler", "StateServer"]

ResponseT = TypeVar("ResponseT")
RequestT = TypeVar("RequestT")
StateT = TypeVar("StateT")


@dataclass
class ScriptState(Generic[ResponseT, RequestT]):
    """Shared by the test thread and the handler threads; every access holds ``lock``."""

    api_key: str
    script: list[ResponseT]
    requests: list[RequestT] = field(default_factory=lambda: list[Any]())
    served: int = 0  # requests that reached the script, numbering ids in the responses
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: RequestT) -> None:
        with self.lock:
            self.requests.append(request)

    def next_response(self) -> tuple[ResponseT | None, int]:
        """The next scripted response (``None`` once the script is used up) and its number."""
        with self.lock:
            response = self.script.pop(0) if self.script else None
            self.served += 1
            return response, self.served


class StateServer(ThreadingHTTPServer, Generic[StateT]):
    daemon_threads = True
    state: StateT

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up on a stream (an SDK stops at a garbage line) resets the
        # connection under our writes: expected, not a server fault worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ScriptedHandler(BaseHTTPRequestHandler):
    """The HTTP side both fakes share: JSON answers and server-sent events in chunks."""

    protocol_version = "HTTP/1.1"  # chunked transfer, as the real APIs stream

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # keep test output clean

    def _send_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str]
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_event_stream(self, headers: Mapping[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP chunk; the empty one ends the body."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class ScriptedHttpServer(Generic[ResponseT, RequestT]):
    """Lifecycle, script and records of a fake. Its handler speaks the wire format and reaches
    the state as ``self.server.state``; ``url_path`` ends ``base_url`` (e.g. ``"/v1"``)."""

    def __init__(
        self,
        state: ScriptState[ResponseT, RequestT],
        handler: type[BaseHTTPRequestHandler],
        *,
        thread_name: str,
        url_path: str = "",
    ) -> None:
        self._state = state
        self._handler = handler
        self._thread_name = thread_name
        self._url_path = url_path
        self._httpd: StateServer[ScriptState[ResponseT, RequestT]] | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        httpd = self._httpd = StateServer(("127.0.0.1", 0), self._handler)
        httpd.state = self._state
        self._thread = threading.Thread(
            target=httpd.serve_forever, name=self._thread_name, kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ script and records
    @property
    def base_url(self) -> str:
        """What the SDK's ``base_url`` takes (it appends the endpoint's path itself)."""
        if self._httpd is None:
            name = type(self).__name__
            raise RuntimeError(f"{name} is not running: use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self._url_path}"

    @property
    def api_key(self) -> str:
        return self._state.api_key

    def enqueue(self, *responses: ResponseT) -> None:
        with self._state.lock:
            self._state.script.extend(responses)

    @property
    def requests(self) -> list[RequestT]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def remaining(self) -> int:
        with self._state.lock:
            return len(self._state.script)
