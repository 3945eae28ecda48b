"""The Telegram frontend: a thin client of astridd with the same approval semantics as the CLI.

One session per (chat, user). Replies stream by editing one message at a bounded rate and are
split at 4,096 characters. Approvals are inline keyboards with the CLI's five options; only the
session's owner can press them, and each keyboard's nonce works once. Strangers (not on the
allow-list) get a short refusal that the daemon audits, rate-limited per stranger so that a
flood of messages cannot flood the audit log. The bot talks to the daemon over the same
authenticated WebSocket as every client, so embedded and standalone modes share one code
path; if the daemon restarts, the bot reconnects and resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from astrid_core import AstridError
from astrid_gateway.client import GatewayClient, RpcCallError
from astrid_gateway.paths import state_dir
from astrid_gateway.protocol import (
    AgentError,
    AgentEvent,
    ApprovalNeeded,
    ApprovalResolved,
    BudgetWarning,
    ElicitationNeeded,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
    UrlElicitationNeeded,
)

from ._access import AccessPolicy, CallbackRegistry, CallbackRejected, PendingButton
from ._format import (
    APPROVAL_OPTIONS,
    DENY_INDEX,
    DENY_WITH_MESSAGE,
    RESOLVED,
    TELEGRAM_LIMIT,
    WITH_MESSAGE_INDEX,
    approval_text,
    escape,
    offered_options,
    split_text,
    tool_line,
)
from .settings import TelegramSettings

__all__ = ["AstridTelegramBot", "APPROVAL_OPTIONS", "HELP_TEXT", "RefusalLimiter"]

log = logging.getLogger("astrid.telegram")

HELP_TEXT = (
    "I am Astrid, a secure agent runtime. Write to me and the agent works on it; risky actions "
    "ask you first.\n\n"
    "/start - welcome\n/help - this text\n/reset - end this session and start fresh\n"
    "/status - session, budget and pending approvals\n/cancel - stop the running turn\n"
    "Any other /command goes to the agent: an installed capsule's command expands there."
)
REFUSAL_TEXT = "Sorry, this bot is private."
CANCELLED_TEXT = "⏹ Turn cancelled."
_REFUSED_USERS_KEPT = 100


@dataclass
class _Stranger:
    last_reported: float
    suppressed: int = 0


class RefusalLimiter:
    """Decides which refusals of strangers get a reply and an audit entry.

    Anyone on Telegram can write to the bot as fast as Telegram lets them; answering and
    auditing every message would let them flood the audit log. So each stranger gets at most
    one reported refusal per window, and all strangers together at most ``max_per_window``;
    the rest are only counted, and the count goes into that stranger's next report.
    """

    def __init__(
        self,
        window_seconds: float = 60.0,
        max_per_window: int = 30,
        max_tracked: int = 10_000,
    ) -> None:
        self.window = window_seconds
        self.max_per_window = max_per_window
        self.max_tracked = max_tracked
        self._strangers: dict[int, _Stranger] = {}
        self._reported: deque[float] = deque()

    def __len__(self) -> int:
        """How many strangers are remembered (bounded by ``max_tracked``)."""
        return len(self._strangers)

    def admit(self, user_id: int, now: float) -> int | None:
        """None: refuse silently. Otherwise report, with this many silent refusals before it."""
        while self._reported and now - self._reported[0] >= self.window:
            self._reported.popleft()
        known = self._strangers.get(user_id)
        if known is not None and now - known.last_reported < self.window:
            known.suppressed += 1
            return None
        if len(self._reported) >= self.max_per_window:
            # Too many strangers at once; one not yet remembered is not counted either.
            if known is not None:
                known.suppressed += 1
            return None
        if known is None and len(self._strangers) >= self.max_tracked:
            # Keep memory bounded; only strangers reported within the window still matter.
            self._strangers = {
                user: seen
                for user, seen in self._strangers.items()
                if now - seen.last_reported < self.window
            }
        suppressed = known.suppressed if known is not None else 0
        self._strangers[user_id] = _Stranger(now)
        self._reported.append(now)
        return suppressed


@dataclass
class _Stream:
    """The message currently being streamed into a chat."""

    chat_id: int
    message_id: int | None = None
    text: str = ""
    sent_text: str = ""
    last_edit: float = 0.0
    # One flush at a time: the periodic flusher and the event handler (new text, the end of
    # the turn) both flush, and a flush awaits the network between taking a finished part off
    # ``text`` and sending the rest; two interleaved flushes cut the same part twice and lost
    # text (seen under load in the long-reply test).
    lock: anyio.Lock = field(default_factory=anyio.Lock)


@dataclass
class _Denial:
    """A "Deny with a message" pressed: the owner's next message in the chat is the reason."""

    request_id: str
    owner: int


ASK_FOR_WORDS = (
    "✍️ Write what the agent should do instead: your next message here is returned to it as "
    "the tool result. /cancel denies without a message."
)


@dataclass
class _Form:
    request_id: str
    fields: list[tuple[str, dict[str, Any]]]
    content: dict[str, Any] = field(default_factory=dict[str, Any])


class AstridTelegramBot:
    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.access = AccessPolicy(
            settings.allowed_user_ids, allow_any_user=settings.allow_any_user
        )
        self.buttons = CallbackRegistry()
        self.client: GatewayClient | None = None
        self.connected = anyio.Event()
        self.refused_users: list[int] = []  # the most recent refusals, newest last
        self.refusals = RefusalLimiter()
        self._home = state_dir(settings.home)
        self._sessions_file = self._home / "telegram" / "sessions.json"
        self._sessions: dict[str, str] = self._load_sessions()
        self._chat_of_session: dict[str, int] = {}
        self._owner_of_session: dict[str, int] = {}
        self._streams: dict[int, _Stream] = {}
        self._forms: dict[int, _Form] = {}
        self._denials: dict[int, _Denial] = {}  # chat -> a denial waiting for its words
        self._reoffered: set[str] = set()  # deferred requests offered again with a new keyboard
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._stop = anyio.Event()

    # ------------------------------------------------------------------ sessions

    def _load_sessions(self) -> dict[str, str]:
        try:
            data = json.loads(self._sessions_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_sessions(self) -> None:
        self._sessions_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self._sessions_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._sessions))
        tmp.replace(self._sessions_file)

    @staticmethod
    def _key(chat_id: int, user_id: int) -> str:
        return f"{chat_id}:{user_id}"

    async def _session_for(self, chat_id: int, user_id: int, *, fresh: bool = False) -> str:
        client = await self._client()
        key = self._key(chat_id, user_id)
        session = None if fresh else self._sessions.get(key)
        if session is not None:
            try:
                await client.call("resumeSession", session_id=session)
            except RpcCallError:
                session = None  # deleted or unknown after a reset: start a new one
        if session is None:
            params: dict[str, Any] = {}
            if self.settings.workspace_path:
                params["workspace"] = self.settings.workspace_path
            info = await client.call("createSession", **params)
            session = str(info["session_id"])
            self._sessions[key] = session
            self._save_sessions()
        self._chat_of_session[session] = chat_id
        self._owner_of_session[session] = user_id
        return session

    async def _client(self) -> GatewayClient:
        with anyio.fail_after(30):
            await self.connected.wait()
        assert self.client is not None
        return self.client

    # ------------------------------------------------------------------ running

    def build_application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = ApplicationBuilder()
        app = (
            builder.token(self.settings.bot_token)
            .base_url(self.settings.base_url)
            .concurrent_updates(True)
            .build()
        )
        app.add_handler(CommandHandler("start", self._cmd_start))
        app.add_handler(CommandHandler("help", self._cmd_help))
        app.add_handler(CommandHandler("reset", self._cmd_reset))
        app.add_handler(CommandHandler("status", self._cmd_status))
        app.add_handler(CommandHandler("cancel", self._cmd_cancel))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self._on_text))
        # Any other /command is a turn: an installed capsule's [[command]] expands into its
        # prompt in the runtime (it runs nothing by itself); otherwise the agent reads it as is.
        app.add_handler(MessageHandler(filters.COMMAND, self._on_text))
        return app

    async def run(self) -> None:
        """Poll Telegram and bridge to the daemon until ``stop()``."""
        app = self.build_application()
        self._app = app
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=2, drop_pending_updates=False)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._gateway_loop)
                tg.start_soon(self._flusher)
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await app.updater.stop()
                await app.stop()
                await app.shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _gateway_loop(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            try:
                client = await GatewayClient.open(
                    self.settings.home,
                    autostart=self.settings.autostart_daemon,
                    client_name="telegram",
                )
                async with client:
                    self.client = client
                    await client.subscribe()
                    self.connected.set()
                    backoff = 0.25
                    log.info("connected to the daemon")
                    async for event in client.events():
                        await self._on_event(event)
            except AstridError as exc:
                log.warning("daemon unavailable (%s); retrying in %.1f s", exc.message, backoff)
            except OSError as exc:
                log.warning("daemon connection failed (%s); retrying", exc)
            finally:
                self.connected = anyio.Event()
                self.client = None
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # ------------------------------------------------------------------ telegram -> daemon

    async def _allowed(self, update: Update) -> bool:
        user = update.effective_user
        if user is not None and self.access.permits(user.id):
            return True
        user_id = user.id if user else 0
        self.refused_users.append(user_id)
        del self.refused_users[:-_REFUSED_USERS_KEPT]
        suppressed = self.refusals.admit(user_id, time.monotonic())
        if suppressed is None:
            return False  # reported recently: stay quiet, the next report carries the count
        log.warning("refused Telegram user %s (not in allowed_user_ids)", user_id)
        if update.effective_message is not None:
            try:
                await update.effective_message.reply_text(REFUSAL_TEXT)
            except TelegramError as exc:
                log.info("could not tell user %s they were refused: %s", user_id, exc)
        chat = update.effective_chat
        await self._audit_refusal(user_id, chat.id if chat else None, suppressed)
        return False

    async def _audit_refusal(self, user_id: int, chat_id: int | None, suppressed: int) -> None:
        params: dict[str, Any] = {
            "event": "user_refused",
            "user": str(user_id),
            "reason": "Telegram user not in [telegram] allowed_user_ids",
            "suppressed": suppressed,
        }
        if chat_id is not None:
            params["chat"] = str(chat_id)
        try:
            await (await self._client()).call("recordFrontendEvent", **params)
        except (AstridError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, AstridError) else "daemon unavailable"
            log.warning("refusal of Telegram user %s was not audited: %s", user_id, message)

    async def _cmd_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self._allowed(update) and update.effective_message:
            await update.effective_message.reply_text("Welcome to Astrid.\n\n" + HELP_TEXT)

    async def _cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self._allowed(update) and update.effective_message:
            await update.effective_message.reply_text(HELP_TEXT)

    async def _cmd_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if (
            not await self._allowed(update)
            or not update.effective_chat
            or not update.effective_user
        ):
            return
        key = self._key(update.effective_chat.id, update.effective_user.id)
        old = self._sessions.pop(key, None)
        if old is not None:
            try:
                await (await self._client()).call("endSession", session_id=old)
            except AstridError as exc:
                log.info("ending session %s: %s", old, exc.message)
        session = await self._session_for(
            update.effective_chat.id, update.effective_user.id, fresh=True
        )
        await self._send(update.effective_chat.id, f"New session <code>{escape(session)}</code>.")

    async def _cmd_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if (
            not await self._allowed(update)
            or not update.effective_chat
            or not update.effective_user
        ):
            return
        session = await self._session_for(update.effective_chat.id, update.effective_user.id)
        client = await self._client()
        lines = [f"Session <code>{escape(session)}</code>"]
        try:
            budget = await client.call("sessionBudget", session_id=session)
            lines.append(f"Budget: <code>{escape(json.dumps(budget, default=str))[:500]}</code>")
        except AstridError as exc:
            lines.append(f"Budget: unavailable ({escape(exc.message)})")
        pending = sum(
            1
            for s, c in self._chat_of_session.items()
            if c == update.effective_chat.id and self.buttons.nonce_for(s) is not None
        )
        lines.append(f"Pending approvals here: {pending}")
        await self._send(update.effective_chat.id, "\n".join(lines))

    async def _cmd_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if (
            not await self._allowed(update)
            or not update.effective_chat
            or not update.effective_user
        ):
            return
        chat = update.effective_chat.id
        client = await self._client()
        denial = self._denials.get(chat)
        if denial is not None and denial.owner == update.effective_user.id:
            await self._deny_with(chat, self._denials.pop(chat), None)
            return
        form = self._forms.pop(chat, None)
        if form is not None:
            await client.call("elicitationResponse", request_id=form.request_id, action="cancel")
            await self._send(chat, "Form cancelled.")
            return
        session = self._sessions.get(self._key(chat, update.effective_user.id))
        cancelled = False
        if session is not None:
            cancelled = bool((await client.call("cancelTurn", session_id=session)).get("cancelled"))
        # When it worked, the turn's own end (turn_complete, "cancelled") confirms it in chat.
        await self._send(
            chat, "Cancelling the running turn…" if cancelled else "Nothing is running."
        )

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self._allowed(update):
            return
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or user is None or message.text is None:
            return
        denial = self._denials.get(chat.id)
        if denial is not None and denial.owner == user.id:
            await self._deny_with(chat.id, self._denials.pop(chat.id), message.text)
            return
        if chat.id in self._forms:
            await self._form_answer(chat.id, message.text)
            return
        session = await self._session_for(chat.id, user.id)
        await self._offer_deferred(chat.id, user.id, session)
        self._streams[chat.id] = _Stream(chat.id)
        client = await self._client()
        try:
            await client.call("sendInput", session_id=session, text=message.text)
        except RpcCallError as exc:
            await self._send(chat.id, f"⚠️ {escape(exc.message)}")

    async def _offer_deferred(self, chat_id: int, user_id: int, session: str) -> None:
        try:
            deferred = await (await self._client()).call("listDeferred")
        except AstridError:
            return
        requests = [item.get("request", item) for item in deferred or []]
        # Only what is still deferred needs remembering: keeps the set bounded.
        self._reoffered &= {str(request.get("request_id")) for request in requests}
        for request in requests:
            request_id = str(request.get("request_id"))
            if str(request.get("session_id")) != session:
                continue
            if request_id in self._reoffered and self.buttons.nonce_for(request_id) is not None:
                continue  # offered again already and its keyboard is still open
            # A keyboard from while the request was live asked a question the daemon stopped
            # waiting for (it timed out): retire it, so the new keyboard is the only answer.
            self.buttons.forget(request_id)
            self._reoffered.add(request_id)
            await self._send_approval(session, request, note="(waiting since you were away)")

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        try:
            button, index = self.buttons.resolve(
                query.data or "", query.from_user.id, WITH_MESSAGE_INDEX + 1
            )
        except CallbackRejected as rejected:
            await query.answer(str(rejected), show_alert=True)
            return
        if index == WITH_MESSAGE_INDEX:
            # Nothing is sent yet: the question stays open until the words (or /cancel) come.
            self._denials[button.chat_id] = _Denial(button.request_id, button.owner_user_id)
            await query.answer(DENY_WITH_MESSAGE)
            await self._mark_answered(query, button.chat_id, DENY_WITH_MESSAGE)
            await self._send(button.chat_id, escape(ASK_FOR_WORDS))
            return
        option, label = APPROVAL_OPTIONS[index]
        client = await self._client()
        try:
            await client.call("approvalResponse", request_id=button.request_id, option=option)
        except RpcCallError as exc:
            await query.answer(exc.message[:190], show_alert=True)
            return
        await query.answer(label)
        await self._mark_answered(query, button.chat_id, label)

    async def _mark_answered(self, query: CallbackQuery, chat_id: int, label: str) -> None:
        """Replace the keyboard by the answer and who gave it: "you", as only the session's
        owner can press it."""
        if query.message is None or self._app is None:
            return
        text = getattr(query.message, "text", "") or ""
        try:
            await self._app.bot.edit_message_text(
                chat_id=chat_id,
                message_id=query.message.message_id,
                text=escape(text) + f"\n\n→ <b>{escape(label)}</b> (by you)",
                parse_mode=ParseMode.HTML,
            )
        except TelegramError as exc:
            log.info("could not mark the approval message: %s", exc)

    async def _deny_with(self, chat: int, denial: _Denial, words: str | None) -> None:
        """Send the denial the owner asked for, with their words as the reason (or none)."""
        client = await self._client()
        reason = words.strip() if words and words.strip() else None
        try:
            await client.call(
                "approvalResponse", request_id=denial.request_id, option="deny", reason=reason
            )
        except RpcCallError as exc:
            await self._send(chat, f"⚠️ not sent: {escape(exc.message)}")
            return
        await self._send(
            chat,
            "→ <b>denied</b> (by you); the agent reads your message."
            if reason
            else "→ <b>denied</b> (by you), without a message.",
        )

    # ------------------------------------------------------------------ daemon -> telegram

    async def _on_event(self, event: AgentEvent) -> None:
        session = str(event.session_id or "")
        chat = self._chat_of_session.get(session)
        if chat is None:
            if isinstance(event, ApprovalNeeded):
                log.info("approval for a session without a Telegram chat: left for other clients")
            return
        match event:
            case TextDelta(text=text):
                stream = self._streams.setdefault(chat, _Stream(chat))
                stream.text += text
                await self._stream_flush(stream, final=False)
            case ToolCallStarted() | ToolCallFinished():
                await self._finish_stream(chat)
                if isinstance(event, ToolCallFinished) or event.summary:
                    await self._send(chat, tool_line(event))
            case ApprovalNeeded(request=request):
                await self._finish_stream(chat)
                await self._send_approval(session, request.model_dump(mode="json"))
            case ApprovalResolved():
                await self._resolved(chat, event)
            case ElicitationNeeded(request=request):
                await self._start_form(chat, request.model_dump(mode="json"))
            case UrlElicitationNeeded(request=request):
                markup = InlineKeyboardMarkup(
                    [[InlineKeyboardButton("Open link", url=request.url)]]
                )
                await self._send(chat, escape(request.message or "Please open this link."), markup)
            case BudgetWarning(message=message):
                await self._send(chat, f"⚠️ {escape(message)}")
            case AgentError(message=message):
                await self._finish_stream(chat)
                await self._send(chat, f"❌ {escape(message)}")
            case TurnComplete(stop_reason=reason):
                await self._finish_stream(chat)
                if reason == "cancelled":
                    await self._send(chat, CANCELLED_TEXT)
            case _:
                pass

    async def _resolved(self, chat: int, event: ApprovalResolved) -> None:
        """An approval was answered. If its keyboard (or a denial waiting for words) was still
        open here, someone else answered it: say who, never "you"."""
        request_id = event.request_id
        open_here = self.buttons.nonce_for(request_id) is not None
        denial = self._denials.get(chat)
        if denial is not None and denial.request_id == request_id:
            # Ours is popped before it is sent: one still here was answered elsewhere.
            del self._denials[chat]
            open_here = True
        self.buttons.forget(request_id)
        if not open_here:
            return
        option = event.option
        who = event.resolved_by or "unknown"
        await self._send(
            chat,
            f"→ <b>{escape(RESOLVED.get(option, option))}</b> (by another client ({escape(who)}))",
        )

    async def _send_approval(self, session: str, request: dict[str, Any], note: str = "") -> None:
        chat = self._chat_of_session.get(session)
        owner = self._owner_of_session.get(session)
        if chat is None or owner is None:
            return
        request_id = str(request.get("request_id"))
        nonce = self.buttons.issue(PendingButton(request_id, owner, chat, session))
        text = approval_text(request, note)
        offered = offered_options(request)
        rows = [
            [InlineKeyboardButton(APPROVAL_OPTIONS[i][1], callback_data=f"ap:{nonce}:{i}")]
            for i in offered
        ]
        if DENY_INDEX in offered:
            rows.append(
                [
                    InlineKeyboardButton(
                        DENY_WITH_MESSAGE, callback_data=f"ap:{nonce}:{WITH_MESSAGE_INDEX}"
                    )
                ]
            )
        await self._send(chat, text, InlineKeyboardMarkup(rows))

    async def _start_form(self, chat: int, request: dict[str, Any]) -> None:
        schema = request.get("requested_schema") or {}
        fields = list((schema.get("properties") or {}).items())
        form = _Form(str(request.get("request_id")), fields)
        self._forms[chat] = form
        await self._send(chat, f"📝 {escape(str(request.get('message', '')))}\n(/cancel to refuse)")
        await self._ask_next_field(chat, form)

    async def _ask_next_field(self, chat: int, form: _Form) -> None:
        if len(form.content) == len(form.fields):
            del self._forms[chat]
            await (await self._client()).call(
                "elicitationResponse",
                request_id=form.request_id,
                action="accept",
                content=form.content,
            )
            await self._send(chat, "Thanks, sent.")
            return
        name, spec = form.fields[len(form.content)]
        label = spec.get("title") or spec.get("description") or name
        choices = f" (one of: {', '.join(map(str, spec['enum']))})" if "enum" in spec else ""
        await self._send(chat, f"{escape(str(label))}{escape(choices)}?")

    async def _form_answer(self, chat: int, text: str) -> None:
        form = self._forms[chat]
        name, spec = form.fields[len(form.content)]
        value: Any = text
        if spec.get("type") == "integer":
            if not text.strip().lstrip("-").isdigit():
                await self._send(chat, "Please answer with a whole number.")
                return
            value = int(text)
        elif spec.get("type") == "boolean":
            value = text.strip().lower() in ("y", "yes", "true", "1")
        elif "enum" in spec and text not in map(str, spec["enum"]):
            await self._send(chat, "Please pick one of the listed values.")
            return
        form.content[name] = value
        await self._ask_next_field(chat, form)

    # ------------------------------------------------------------------ streaming

    async def _flusher(self) -> None:
        while True:
            await anyio.sleep(self.settings.edit_interval_seconds / 2)
            for stream in list(self._streams.values()):
                await self._stream_flush(stream, final=False)

    async def _finish_stream(self, chat: int) -> None:
        stream = self._streams.pop(chat, None)
        if stream is not None:
            await self._stream_flush(stream, final=True)

    async def _stream_flush(self, stream: _Stream, *, final: bool) -> None:
        async with stream.lock:
            await self._stream_flush_locked(stream, final=final)

    async def _stream_flush_locked(self, stream: _Stream, *, final: bool) -> None:
        if not stream.text.strip() or stream.text == stream.sent_text:
            return
        now = time.monotonic()
        if (
            not final
            and stream.message_id is not None
            and now - stream.last_edit < self.settings.edit_interval_seconds
        ):
            return  # bounded edit rate
        parts = split_text(stream.text, TELEGRAM_LIMIT)
        # Everything but the last part is complete: finish it and start a new message.
        while len(parts) > 1:
            head = parts.pop(0)
            await self._put(stream, head)
            stream.message_id = None
            stream.text = stream.text[len(head) :].lstrip("\n")
            stream.sent_text = ""
        await self._put(stream, parts[0])
        stream.last_edit = now

    async def _put(self, stream: _Stream, text: str) -> None:
        if self._app is None:
            return
        bot = self._app.bot
        try:
            if stream.message_id is None:
                message = await bot.send_message(
                    stream.chat_id, escape(text), parse_mode=ParseMode.HTML
                )
                stream.message_id = message.message_id
            elif text != stream.sent_text:
                await bot.edit_message_text(
                    escape(text),
                    chat_id=stream.chat_id,
                    message_id=stream.message_id,
                    parse_mode=ParseMode.HTML,
                )
            stream.sent_text = text
        except TelegramError as exc:
            log.warning("telegram send failed: %s", exc)

    async def _send(
        self, chat: int, html_text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        if self._app is None:
            return
        for part in split_text(html_text, TELEGRAM_LIMIT) if markup is None else [html_text]:
            try:
                await self._app.bot.send_message(
                    chat, part, parse_mode=ParseMode.HTML, reply_markup=markup
                )
            except TelegramError as exc:
                log.warning("telegram send failed: %s", exc)
