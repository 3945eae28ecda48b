"""A fake Telegram Bot API *server* for tests, demos and users' own tests.

The real python-telegram-bot talks to it over HTTP (``base_url``), so the bot's request
encoding, long polling, retries and error handling are all exercised for real. The server
keeps the chat state a user would see (messages, edits, inline keyboards), records every call,
and validates what the real API validates where it matters to us: the 4,096-character limit
(counted, like Telegram, in UTF-16 code units: an emoji is two), HTML ``parse_mode`` entities,
callback query ids and edits of messages that do not exist.

Binds 127.0.0.1 only. Standard library only: no extra dependency for users' tests.
"""

from __future__ import annotations

import contextlib
import html.parser
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeBotApi", "SentCall", "ChatMessage", "MAX_MESSAGE_LENGTH"]

MAX_MESSAGE_LENGTH = 4096
_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "span",
    "tg-spoiler",
    "blockquote",
    "tg-emoji",
}


class _BadRequest(Exception):
    pass


class _HtmlChecker(html.parser.HTMLParser):
    """Rejects what Telegram's HTML parse mode rejects: unknown or unbalanced tags, bad entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text_length = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            raise _BadRequest(f'can\'t parse entities: unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise _BadRequest(
                f"can't parse entities: can't find end tag corresponding to \"{tag}\""
            )
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        # With convert_charrefs off, well-formed entities arrive via handle_entityref; anything
        # left in data that looks like markup is what Telegram refuses to parse.
        if "<" in data or ">" in data or "&" in data:
            raise _BadRequest("can't parse entities: unescaped '<', '>' or '&'")
        self.text_length += _utf16_len(data)

    def handle_entityref(self, name: str) -> None:
        if name not in {"lt", "gt", "amp", "quot"}:
            raise _BadRequest(f'can\'t parse entities: unsupported entity "&{name};"')
        self.text_length += 1

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in "xX" else int(name)
            char = chr(code)
        except (ValueError, OverflowError):
            raise _BadRequest(
                f'can\'t parse entities: bad character reference "&#{name};"'
            ) from None
        self.text_length += _utf16_len(char)


def _utf16_len(text: str) -> int:
    """Telegram measures text in UTF-16 code units: characters outside the BMP count twice."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def _visible_length(text: str, parse_mode: str | None) -> int:
    if parse_mode and parse_mode.upper() == "HTML":
        checker = _HtmlChecker()
        checker.feed(text)
        checker.close()
        if checker.stack:
            raise _BadRequest(f'can\'t parse entities: unclosed tag "{checker.stack[-1]}"')
        return checker.text_length
    return _utf16_len(text)


@dataclass
class SentCall:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class ChatMessage:
    chat_id: int
    message_id: int
    text: str
    from_bot: bool
    reply_markup: dict[str, Any] | None = None
    parse_mode: str | None = None
    edits: int = 0


class FakeBotApi:
    """Run with ``with FakeBotApi() as api:``; give the bot ``base_url=api.base_url``."""

    def __init__(
        self,
        token: str = "123456:TEST-token",  # noqa: S107 - a fake token for a fake server
        bot_username: str = "astrid_test_bot",
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.calls: list[SentCall] = []
        self.messages: dict[tuple[int, int], ChatMessage] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._open_callbacks: dict[str, int] = {}  # callback id -> user id
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.fail_next: dict[str, int] = {}  # method -> HTTP status to return once

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeBotApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                api._handle(self)

            do_GET = do_POST  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            with self._cond:
                self._cond.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake server first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Pass as ``Application.builder().base_url(...)``: the token is appended by the bot."""
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ test-side API

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
            return update_id

    def _user(self, user_id: int, name: str) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": name, "username": name.lower()}

    def send_user_message(
        self, user_id: int, text: str, *, chat_id: int | None = None, name: str = "Tester"
    ) -> int:
        """A user writes to the bot. Returns the new message id."""
        chat = chat_id if chat_id is not None else user_id
        message_id = next(self._message_ids)
        self.messages[(chat, message_id)] = ChatMessage(chat, message_id, text, from_bot=False)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if chat == user_id else "group"},
            "from": self._user(user_id, name),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        self._push({"message": message})
        return message_id

    def press_button(
        self, user_id: int, chat_id: int, message_id: int, data: str, *, name: str = "Tester"
    ) -> str:
        """A user presses an inline keyboard button. Returns the callback query id."""
        target = self.messages.get((chat_id, message_id))
        callback_id = f"cb{next(self._callback_ids)}"
        self._open_callbacks[callback_id] = user_id
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": target.text if target else "",
        }
        self._push(
            {
                "callback_query": {
                    "id": callback_id,
                    "from": self._user(user_id, name),
                    "chat_instance": str(chat_id),
                    "message": message,
                    "data": data,
                }
            }
        )
        return callback_id

    def bot_messages(self, chat_id: int) -> list[ChatMessage]:
        return sorted(
            (m for (c, _), m in self.messages.items() if c == chat_id and m.from_bot),
            key=lambda m: m.message_id,
        )

    def calls_to(self, method: str) -> list[SentCall]:
        return [c for c in self.calls if c.method == method]

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(
            f"fake Bot API: timed out waiting for {what}; calls: "
            f"{[c.method for c in self.calls][-20:]}"
        )

    def buttons(self, message: ChatMessage) -> list[tuple[str, str]]:
        """(text, callback_data or url) of every inline button of a message."""
        rows = (message.reply_markup or {}).get("inline_keyboard", [])
        return [
            (b["text"], b.get("callback_data") or b.get("url", "")) for row in rows for b in row
        ]

    # ------------------------------------------------------------------ HTTP side

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith(prefix):
            self._reply(
                request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
            return
        method = request.path[len(prefix) :]
        params = self._read_params(request)
        self.calls.append(SentCall(method, params))
        status = self.fail_next.pop(method, None)
        if status is not None:
            self._reply(
                request,
                status,
                {
                    "ok": False,
                    "error_code": status,
                    "description": "Injected failure",
                    **({"parameters": {"retry_after": 1}} if status == 429 else {}),
                },
            )
            return
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self._reply(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        try:
            result = handler(params)
        except _BadRequest as exc:
            self._reply(
                request, 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
            )
            return
        self._reply(request, 200, {"ok": True, "result": result})

    @staticmethod
    def _read_params(request: BaseHTTPRequestHandler) -> dict[str, Any]:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        ctype = request.headers.get("Content-Type", "")
        if "json" in ctype:
            return dict(json.loads(body or b"{}"))
        parsed = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        params: dict[str, Any] = {}
        for key, values in parsed.items():
            value = values[-1]
            try:
                params[key] = json.loads(value) if value[:1] in "{[" else value
            except json.JSONDecodeError:
                params[key] = value
        return params

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        # A bot that stops while its long poll is open has hung up: nobody to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            request.wfile.write(data)

    # ------------------------------------------------------------------ Bot API methods

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {
            "id": int(self.token.split(":")[0]),
            "is_bot": True,
            "first_name": "Astrid",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:  # noqa: N802
        return True

    def _api_setMyCommands(self, params: dict[str, Any]) -> bool:  # noqa: N802
        return True

    def _api_sendChatAction(self, params: dict[str, Any]) -> bool:  # noqa: N802
        return True

    def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:  # noqa: N802
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 5.0)  # bounded long poll
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline and self._server is not None:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            return list(self._updates)

    def _check_text(self, text: str, parse_mode: str | None) -> None:
        if not text.strip():
            raise _BadRequest("message text is empty")
        if _visible_length(text, parse_mode) > MAX_MESSAGE_LENGTH:
            raise _BadRequest("message is too long")

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        chat_id = int(params["chat_id"])
        text = str(params.get("text", ""))
        parse_mode = params.get("parse_mode")
        self._check_text(text, parse_mode)
        message_id = next(self._message_ids)
        markup = (
            params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        )
        self.messages[(chat_id, message_id)] = ChatMessage(
            chat_id, message_id, text, from_bot=True, reply_markup=markup, parse_mode=parse_mode
        )
        return self._message_json(chat_id, message_id, text)

    def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        chat_id = int(params["chat_id"])
        message_id = int(params["message_id"])
        message = self.messages.get((chat_id, message_id))
        if message is None or not message.from_bot:
            raise _BadRequest("message to edit not found")
        text = str(params.get("text", ""))
        self._check_text(text, params.get("parse_mode"))
        markup = (
            params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        )
        if text == message.text and markup == message.reply_markup:
            raise _BadRequest("message is not modified")
        message.text = text
        message.parse_mode = params.get("parse_mode")
        message.reply_markup = markup
        message.edits += 1
        return self._message_json(chat_id, message_id, text)

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        chat_id = int(params["chat_id"])
        message_id = int(params["message_id"])
        message = self.messages.get((chat_id, message_id))
        if message is None:
            raise _BadRequest("message to edit not found")
        message.reply_markup = (
            params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        )
        return self._message_json(chat_id, message_id, message.text)

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:  # noqa: N802
        callback_id = str(params.get("callback_query_id"))
        if self._open_callbacks.pop(callback_id, None) is None:
            raise _BadRequest(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    def _api_deleteMessage(self, params: dict[str, Any]) -> bool:  # noqa: N802
        return (
            self.messages.pop((int(params["chat_id"]), int(params["message_id"])), None) is not None
        )

    def _message_json(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": self._api_getMe({}),
            "text": text,
        }
