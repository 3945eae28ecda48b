"""One turn of the agent: stream the model, authorize and run each tool call, repeat.

There is no side door: the LLM call itself is an ``LlmCall`` action (its estimated cost is
reserved in the budget and the real cost committed after), and every tool call is an action the
SecurityInterceptor decides on before the tool runs. A denial goes back to the model as the
tool's result, with the reason. Tool output enters the conversation as *untrusted* content.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from astrid_approval import SecurityInterceptor
from astrid_core import AstridError, LlmCall, MessageTrust, TaggedMessage

from ..events import (
    AgentError,
    AgentEvent,
    BudgetWarning,
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
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from ..sessions import Session
from ..tools import ToolContext, ToolRegistry

__all__ = ["AgentLoop", "TurnCancelled"]

log = logging.getLogger("astrid.runtime")


class TurnCancelled(Exception):
    pass


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
    _cancel: anyio.CancelScope | None = None
    _cancelled: bool = False

    def cancel(self) -> bool:
        self._cancelled = True
        if self._cancel is not None:
            self._cancel.cancel()
            return True
        return False

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(ToolSpec(t.name, t.description, t.input_schema) for t in self.tools)

    async def run(self, text: str) -> AsyncIterator[AgentEvent]:
        sid = self.session.id
        self._cancelled = False
        self.session.messages.append(ChatMessage("user", text))
        if not self.session.title:
            self.session.title = text.strip().splitlines()[0][:80] if text.strip() else ""
        rounds = 0
        for rounds in range(1, self.max_turns + 1):
            if self._cancelled:
                yield TurnComplete(session_id=sid, stop_reason="cancelled", turns=rounds - 1)
                return
            request = ModelRequest(
                self.session.model,
                self.system_prompt,
                tuple(self.session.messages),
                self._tool_specs(),
                self.max_tokens,
            )
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
                async for event in self.provider.stream(request):
                    if self._cancelled:
                        raise TurnCancelled
                    if isinstance(event, TextChunk):
                        text_parts.append(event.text)
                        yield TextDelta(session_id=sid, text=event.text)
                    elif isinstance(event, ToolCallReady):
                        calls.append(event.call)
                    elif isinstance(event, Usage):
                        usage = event
            except TurnCancelled:
                await self.interceptor.record_outcome(llm, success=False, actual_cost=0)
                yield TurnComplete(session_id=sid, stop_reason="cancelled", turns=rounds)
                return
            except AstridError as exc:
                await self.interceptor.record_outcome(llm, success=False, actual_cost=0)
                yield AgentError(session_id=sid, code=exc.code, message=exc.message, hint=exc.hint)
                yield TurnComplete(session_id=sid, stop_reason="error", turns=rounds)
                return
            cost = self.provider.cost_micros(self.session.model, usage)
            await self.interceptor.record_outcome(llm, success=True, actual_cost=cost)
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

    async def _tool_call(self, call: ToolCall) -> AsyncIterator[AgentEvent]:
        sid = self.session.id
        tool = self.tools.get(call.name)
        summary = call.name
        ok, denied = False, False
        output = ""
        if tool is None:
            available = ", ".join(self.tools.names())
            output = f"error: there is no tool named {call.name!r}; available: {available}"
            yield ToolCallStarted(
                session_id=sid, call_id=call.id, tool=call.name, arguments=call.arguments
            )
        else:
            try:
                action = tool.action(call.arguments, self.context)
            except AstridError as exc:
                action = None
                output = f"error: invalid arguments: {exc.message}"
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
                    action, f"tool {call.name}", untrusted_context=self.session.has_untrusted
                )
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
                        output = f"error: {exc.message}"
                    except OSError as exc:
                        output = f"error: {exc.strerror or exc}"
                    finally:
                        self._cancel = None
                    await self.interceptor.record_outcome(result, success=ok, output=output)
        tagged = TaggedMessage(
            user_id="tool",
            frontend="runtime",
            trust=MessageTrust.UNTRUSTED,
            content=output,
            session_id=sid,
            context=f"tool {call.name}",
        )
        self.session.messages.append(
            ChatMessage("tool", tagged.as_model_text(), tool_call_id=call.id, untrusted=True)
        )
        self.session.has_untrusted = True
        yield ToolCallFinished(
            session_id=sid,
            call_id=call.id,
            tool=call.name,
            ok=ok,
            output=output[:2000],
            denied=denied,
        )
