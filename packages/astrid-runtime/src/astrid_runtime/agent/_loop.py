"""One turn of the agent: stream the model, authorize and run each tool call, repeat.

There is no side door: the LLM call itself is an ``LlmCall`` action (its estimated cost is
reserved in the budget and the real cost committed after), and every tool call is an action the
SecurityInterceptor decides on before the tool runs. A denial goes back to the model as the
tool's result, with the reason. Tool output enters the conversation as *untrusted* content.

Hooks (``_hooks``) are told about each step. A ``before_tool_call`` hook runs before the
interceptor: it may deny the call or rewrite its arguments, and the rewritten call is what the
interceptor then judges, so a hook can never route around it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from astrid_approval import InterceptResult, SecurityInterceptor
from astrid_core import (
    ApprovalDecision,
    AstridError,
    LlmCall,
    MessageTrust,
    SensitiveAction,
    TaggedMessage,
)

from ..events import (
    AgentError,
    AgentEvent,
    BudgetWarning,
    ModelRetrying,
    StatusNote,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
    UsageReport,
)
from ..llm import (
    ChatMessage,
    LlmProvider,
    ModelRequest,
    Retrying,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from ..sessions import Session
from ..tools import Tool, ToolContext, ToolRegistry
from ._compaction import CompactionSettings, compact
from ._hooks import MAX_OUTPUT_IN_PAYLOAD, HookDecision, HookEvent, HookRunner

__all__ = ["AgentLoop", "TurnCancelled"]

log = logging.getLogger("astrid.runtime")


class TurnCancelled(Exception):
    pass


def _previewer(
    tool: Tool, call: ToolCall, action: SensitiveAction, context: ToolContext
) -> Callable[[], str] | None:
    """The tool's own preview of what it will do (a diff), if it has one; computed only if a
    person is asked."""
    preview = getattr(tool, "preview", None)
    if preview is None:
        return None
    return lambda: str(preview(call.arguments, action, context))


async def _close(stream: AsyncIterator[Any]) -> None:
    """Close a provider stream we stop reading early (its HTTP response with it)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as exc:
            log.debug("closing an abandoned model stream: %s", exc)


@dataclass
class AgentLoop:
    session: Session
    provider: LlmProvider
    interceptor: SecurityInterceptor
    tools: ToolRegistry
    context: ToolContext
    system_prompt: str
    max_turns: int = 25
    max_tokens: int = 4096
    session_budget_micros: int | None = None
    notices: list[str] = field(default_factory=list[str])
    hooks: HookRunner = field(default_factory=HookRunner)
    compaction: CompactionSettings | None = None  # None: never summarize (sub-agents, tests)
    _specs: tuple[tuple[int, ...], tuple[ToolSpec, ...]] | None = None
    _cancel: anyio.CancelScope | None = None
    _cancelled: bool = False
    last_result: InterceptResult | None = None  # the interceptor's decision on the last call

    def cancel(self) -> bool:
        self._cancelled = True
        if self._cancel is not None:
            self._cancel.cancel()
            return True
        return False

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        # Rebuilt only when the registry changes (MCP servers come and go), so each spec's
        # size is measured once rather than on every budget estimate.
        tools = list(self.tools)
        key = tuple(id(t) for t in tools)
        if self._specs is None or self._specs[0] != key:
            specs = tuple(ToolSpec(t.name, t.description, t.input_schema) for t in tools)
            self._specs = (key, specs)
        return self._specs[1]

    async def fire_hook(self, event: str, **data: Any) -> HookDecision:
        """Run the hooks of ``event`` for this session (bounded; never raises for a hook)."""
        return await self.hooks.fire(
            event,
            {"session_id": str(self.session.id), "workspace": self.session.workspace, **data},
        )

    def _request(self) -> ModelRequest:
        return ModelRequest(
            self.session.model,
            self.system_prompt,
            tuple(self.session.messages),
            self._tool_specs(),
            self.max_tokens,
        )

    async def _compact_if_needed(self, request: ModelRequest) -> AsyncIterator[AgentEvent]:
        """Summarize older turns when ``request`` (the next one) nears the model's window. The
        summary is an LLM call under the budget; if it is refused or fails, the turn goes on
        as is."""
        settings = self.compaction
        if settings is None or not settings.exceeded_by(request.estimated_input_tokens):
            return
        result = await compact(
            self.session.messages,
            provider=self.provider,
            interceptor=self.interceptor,
            model=self.session.model,
            system_prompt=self.system_prompt,
            settings=settings,
            session_id=self.session.id,
        )
        for notice in self._drain():
            yield notice
        if result is None:
            return
        self.session.messages = result.messages
        self.session.cost_micros += result.cost_micros
        await self.fire_hook(
            HookEvent.COMPACTION,
            summarized_messages=result.summarized_messages,
            tokens_before=result.tokens_before,
            tokens_after=result.tokens_after,
            cost_micros=result.cost_micros,
        )
        yield StatusNote(
            session_id=self.session.id,
            message=f"summarized {result.summarized_messages} earlier messages to stay within "
            f"the model's context (~{result.tokens_before:,} -> ~{result.tokens_after:,} tokens)",
        )

    async def run(self, text: str) -> AsyncGenerator[AgentEvent, None]:
        try:
            async for event in self._turn(text):
                if isinstance(event, TurnComplete):
                    await self.flush_audit()  # the turn's records are durable when it ends
                    await self.fire_hook(
                        HookEvent.TURN_COMPLETE, stop_reason=event.stop_reason, turns=event.turns
                    )
                yield event
        finally:
            await self.flush_audit()

    async def flush_audit(self) -> None:
        """Write the outcome records queued during the turn (each otherwise rides with the next
        decision's audit write). Shielded: a cancelled turn still leaves its records."""
        with anyio.CancelScope(shield=True):
            try:
                await self.interceptor.audit.flush()
            except AstridError as exc:
                log.error("session %s: outcome records lost: %s", self.session.id, exc.message)

    async def _turn(self, text: str) -> AsyncIterator[AgentEvent]:
        sid = self.session.id
        self._cancelled = False
        await self.fire_hook(HookEvent.USER_PROMPT, prompt=text)
        self.session.messages.append(ChatMessage("user", text))
        if not self.session.title:
            self.session.title = text.strip().splitlines()[0][:80] if text.strip() else ""
        rounds = 0
        for rounds in range(1, self.max_turns + 1):
            if self._cancelled:
                yield TurnComplete(session_id=sid, stop_reason="cancelled", turns=rounds - 1)
                return
            history, request = self.session.messages, self._request()
            async for event in self._compact_if_needed(request):
                yield event
            if self.session.messages is not history:
                request = self._request()  # compacted: the history was replaced
            estimate = self.provider.estimate_cost_micros(request)
            llm = await self.interceptor.intercept(
                LlmCall(
                    model=self.session.model, estimated_cost_micros=estimate, purpose="agent turn"
                ),
                "agent turn",
                estimate,
            )
            for notice in self._drain():
                yield notice
            if not llm.allowed:
                yield AgentError(
                    session_id=sid,
                    code="security.budget",
                    message=llm.authorization.reason,
                    hint="raise [budget] limits or start a new session",
                )
                yield TurnComplete(session_id=sid, stop_reason="denied", turns=rounds)
                return
            text_parts: list[str] = []
            calls: list[ToolCall] = []
            usage = Usage(0, 0)
            try:
                # The stream runs in a cancel scope that ``cancel()`` cancels: a model that
                # stalls (no byte for minutes) is abandoned at once, not when it next speaks.
                # Events are yielded outside the scope (an async generator must not yield
                # inside a cancel scope it opened), so each is taken one at a time.
                stream = self.provider.stream(request)
                try:
                    while True:
                        event = None
                        with anyio.CancelScope() as scope:
                            self._cancel = scope
                            if self._cancelled:
                                scope.cancel()
                            event = await anext(stream, None)
                        self._cancel = None
                        if scope.cancelled_caught or self._cancelled:
                            raise TurnCancelled
                        if event is None:
                            break
                        if isinstance(event, TextChunk):
                            text_parts.append(event.text)
                            yield TextDelta(session_id=sid, text=event.text)
                        elif isinstance(event, ToolCallReady):
                            calls.append(event.call)
                        elif isinstance(event, Usage):
                            usage = event
                        elif isinstance(event, Retrying):
                            yield ModelRetrying(
                                session_id=sid,
                                reason=event.reason,
                                wait_seconds=event.wait_seconds,
                                attempt=event.attempt,
                                max_attempts=event.max_attempts,
                            )
                finally:
                    self._cancel = None
                    with anyio.CancelScope(shield=True):
                        await _close(stream)
            except TurnCancelled:
                # Nothing was delivered: the reservation is refunded in full (cost 0).
                await self.interceptor.record_outcome(llm, success=False, actual_cost=0, queue=True)
                yield TurnComplete(session_id=sid, stop_reason="cancelled", turns=rounds)
                return
            except AstridError as exc:
                await self.interceptor.record_outcome(llm, success=False, actual_cost=0, queue=True)
                yield AgentError(session_id=sid, code=exc.code, message=exc.message, hint=exc.hint)
                yield TurnComplete(session_id=sid, stop_reason="error", turns=rounds)
                return
            cost = self.provider.cost_micros(self.session.model, usage)
            await self.interceptor.record_outcome(llm, success=True, actual_cost=cost, queue=True)
            self.session.cost_micros += cost
            yield UsageReport(
                session_id=sid,
                model=self.session.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_micros=cost,
                session_cost_micros=self.session.cost_micros,
                session_budget_micros=self.session_budget_micros,
            )
            self.session.messages.append(
                ChatMessage("assistant", "".join(text_parts), tuple(calls))
            )
            if not calls:
                self.session.turns += 1
                yield TurnComplete(session_id=sid, stop_reason="end_turn", turns=rounds)
                return
            for call in calls:
                async for event in self._tool_call(call):
                    yield event
                if self._cancelled:
                    self.session.turns += 1
                    yield TurnComplete(session_id=sid, stop_reason="cancelled", turns=rounds)
                    return
        self.session.turns += 1
        yield TurnComplete(session_id=sid, stop_reason="max_turns", turns=rounds)

    def _drain(self) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        limit = self.session_budget_micros or 0
        while self.notices:
            message = self.notices.pop(0)
            events.append(
                BudgetWarning(
                    session_id=self.session.id,
                    spent_micros=self.session.cost_micros,
                    limit_micros=limit,
                    message=message,
                )
            )
        return events

    async def replay(self, call: ToolCall, decision: ApprovalDecision) -> list[AgentEvent]:
        """Run a deferred call a person approved later through the path of a live call:
        ``before_tool_call`` hooks and capsule interceptors (which may deny or rewrite it),
        the interceptor (with the late answer standing in for the question), the tool, the
        audit outcome, ``after_tool_call`` hooks and the events. Returns those events."""
        events = [event async for event in self._tool_call(call, decision)]
        await self.flush_audit()
        return events

    async def _tool_call(
        self, call: ToolCall, preapproved: ApprovalDecision | None = None
    ) -> AsyncIterator[AgentEvent]:
        sid = self.session.id
        hook = await self.fire_hook(
            HookEvent.BEFORE_TOOL_CALL, call_id=call.id, tool=call.name, arguments=call.arguments
        )
        if hook.action == "rewrite" and hook.arguments is not None:
            # From here on the rewritten call *is* the call: the interceptor judges it.
            call = ToolCall(call.id, call.name, hook.arguments)
        tool = self.tools.get(call.name)
        summary = call.name
        ok, denied = False, False
        output = ""
        error: str | None = None
        if hook.denied:
            denied = True
            output = f"DENIED by hook: {hook.reason}"
            yield ToolCallStarted(
                session_id=sid, call_id=call.id, tool=call.name, arguments=call.arguments
            )
            await self._audit_hook_denial(call, tool, hook.reason)
        elif tool is None:
            available = ", ".join(self.tools.names())
            output = error = f"error: there is no tool named {call.name!r}; available: {available}"
            yield ToolCallStarted(
                session_id=sid, call_id=call.id, tool=call.name, arguments=call.arguments
            )
        else:
            try:
                action = tool.action(call.arguments, self.context)
            except AstridError as exc:
                action = None
                output = error = f"error: invalid arguments: {exc.message}"
            if action is not None:
                summary = action.summary
            yield ToolCallStarted(
                session_id=sid,
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments,
                summary=summary,
            )
            if action is not None:
                result = await self.interceptor.intercept(
                    action,
                    f"tool {call.name}"
                    if preapproved is None
                    else f"replay of deferred request {preapproved.request_id}",
                    preview=_previewer(tool, call, action, self.context),
                    _preapproved=preapproved,
                )
                self.last_result = result
                for notice in self._drain():
                    yield notice
                if not result.allowed:
                    denied = True
                    output = f"DENIED: {result.authorization.reason}"
                else:
                    try:
                        with anyio.CancelScope() as scope:
                            self._cancel = scope
                            output = await tool.run(call.arguments, result.action, self.context)
                            ok = True
                        if scope.cancelled_caught:
                            output = "cancelled by the user"
                    except AstridError as exc:
                        output = error = f"error: {exc.message}"
                    except OSError as exc:
                        output = error = f"error: {exc.strerror or exc}"
                    finally:
                        self._cancel = None
                    await self.interceptor.record_outcome(
                        result, success=ok, output=output, queue=True
                    )
        tagged = TaggedMessage(
            user_id="tool",
            frontend="runtime",
            trust=MessageTrust.UNTRUSTED,
            content=output,
            session_id=sid,
            context=f"tool {call.name}",
        )
        if preapproved is None:
            self.session.messages.append(
                ChatMessage("tool", tagged.as_model_text(), tool_call_id=call.id, untrusted=True)
            )
        else:  # no assistant message asked for this call now: a note, not a tool result
            self.session.messages.append(
                ChatMessage(
                    "tool",
                    f"deferred action replayed after approval ({summary}):\n"
                    + tagged.as_model_text(),
                    untrusted=True,
                )
            )
        # Persisted, so that a resumed session starts tainted (the interceptor's label decides).
        self.session.has_untrusted = self.session.has_untrusted or self.interceptor.label.tainted
        about: dict[str, Any] = {"call_id": call.id, "tool": call.name, "arguments": call.arguments}
        if error is not None:
            await self.fire_hook(HookEvent.TOOL_ERROR, **about, error=error[:MAX_OUTPUT_IN_PAYLOAD])
        await self.fire_hook(
            HookEvent.AFTER_TOOL_CALL,
            **about,
            ok=ok,
            denied=denied,
            output=output[:MAX_OUTPUT_IN_PAYLOAD],
        )
        yield ToolCallFinished(
            session_id=sid,
            call_id=call.id,
            tool=call.name,
            ok=ok,
            output=output[:2000],
            denied=denied,
        )

    async def _audit_hook_denial(self, call: ToolCall, tool: Tool | None, reason: str) -> None:
        # The interceptor never saw this call, so the denial is recorded here: every refusal
        # leaves a trace in the audit log, whoever refused.
        action: SensitiveAction | None = None
        if tool is not None:
            try:
                action = tool.action(call.arguments, self.context)
            except AstridError:
                action = None
        # Denied whether or not it can be recorded (the trail logs a missing record).
        await self.interceptor.trail.denial(
            action,
            f"denied by hook: {reason}",
            detail={"layer": "hook", "tool": call.name},
        )
