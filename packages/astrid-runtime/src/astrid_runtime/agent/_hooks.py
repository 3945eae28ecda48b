"""Hooks: the user's own code, told about each step of the agent loop.

Shell hooks come from ``[hooks] shell`` (event -> command lines); Python handlers are
registered on the runtime (``AgentRuntime.add_hook``). Every run is bounded by
``[hooks] timeout_seconds`` and nothing a hook does can crash the loop.

Only ``before_tool_call`` can change what happens: continue, deny (the model is told why) or
rewrite the arguments. It runs *before* the SecurityInterceptor, so the rewritten call is the one
the interceptor judges: a hook can narrow what the agent does, never widen it. Wherever a
``before_tool_call`` hook cannot answer cleanly (timeout, non-zero exit, exception, output that
is not a decision) the call is denied: fail closed. On every other event a failing hook is
logged and the turn goes on.

A shell hook is run without a shell (the line is split with shlex), gets the event as JSON on
stdin, an environment without secrets, and its own process group, which is killed whole on
timeout. It may print one JSON object on stdout::

    {"decision": "continue"}
    {"decision": "deny", "reason": "no writes on Fridays"}
    {"decision": "rewrite", "arguments": {"path": "notes/today.md", "content": "..."}}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from astrid_approval import (
    Deferred,
)
from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    AstridError,
    ConfigError,
    JsonObject,
)
from astrid_workspace import looks_secret, scrubbed_environment

if TYPE_CHECKING:
    from ..config._models import HooksSection

__all__ = [
    "HookEvent",
    "HOOK_EVENTS",
    "HookDecision",
    "HookHandler",
    "HookFailed",
    "HookRunner",
    "ApprovalHooks",
    "hook_event",
    "hook_env",
    "split_command",
    "MAX_OUTPUT_IN_PAYLOAD",
]

log = logging.getLogger("astrid.runtime.hooks")

MAX_OUTPUT_IN_PAYLOAD = 4096  # tool output and errors are capped in hook payloads
_MAX_STDOUT = 1024 * 1024  # a decision is small; anything past this is not one
_MAX_STDERR = 4096


class HookEvent(StrEnum):
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    USER_PROMPT = "user_prompt"
    BEFORE_TOOL_CALL = "before_tool_call"
    AFTER_TOOL_CALL = "after_tool_call"
    TOOL_ERROR = "tool_error"
    APPROVAL_NEEDED = "approval_needed"
    APPROVAL_RESOLVED = "approval_resolved"
    TURN_COMPLETE = "turn_complete"
    COMPACTION = "compaction"


HOOK_EVENTS: tuple[str, ...] = tuple(event.value for event in HookEvent)


def hook_event(name: str) -> HookEvent:
    try:
        return HookEvent(name)
    except ValueError:
        raise ConfigError(
            f"{name!r} is not a hook event",
            hint=f"use one of: {', '.join(HOOK_EVENTS)}",
        ) from None


class HookFailed(AstridError):
    """A hook could not give an answer: timeout, crash, non-zero exit or unreadable output."""

    code = "hook.failed"
    default_hint = "run the hook by hand with the event JSON on stdin to see what it does"


@dataclass(frozen=True)
class HookDecision:
    """What a hook says about a tool call. Other events ignore it."""

    action: Literal["continue", "deny", "rewrite"] = "continue"
    reason: str = ""
    arguments: JsonObject | None = None

    @classmethod
    def proceed(cls) -> HookDecision:
        return _CONTINUE

    @classmethod
    def deny(cls, reason: str) -> HookDecision:
        return cls("deny", reason=reason or "no reason given")

    @classmethod
    def rewrite(cls, arguments: JsonObject) -> HookDecision:
        return cls("rewrite", arguments=arguments)

    @property
    def denied(self) -> bool:
        return self.action == "deny"


_CONTINUE = HookDecision()

HookHandler = Callable[[JsonObject], Awaitable[HookDecision | None]]
"""A Python hook: receives its own copy of the event payload; ``None`` means continue."""


def hook_env(event: str) -> dict[str, str]:
    """The one scrubbed environment (astrid_workspace) and the non-secret ASTRID_* variables:
    host API keys never reach a hook."""
    env = scrubbed_environment()
    for name, value in os.environ.items():
        if name.upper().startswith("ASTRID_") and not looks_secret(name):
            env[name] = value
    env["ASTRID_HOOK_EVENT"] = event
    return env


def split_command(line: str) -> list[str]:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise ConfigError(
            f"hook command {line!r} cannot be split: {exc}",
            hint="check the quoting in [hooks] shell (hooks run without a shell)",
        ) from None
    if not argv:
        raise ConfigError("a hook command line is empty", hint="remove it from [hooks] shell")
    return argv


@dataclass(frozen=True)
class _ShellHook:
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return shlex.join(self.argv)[:120]


@dataclass(frozen=True)
class _PythonHook:
    handler: HookHandler

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


_Hook = _ShellHook | _PythonHook


class HookRunner:
    """Runs the hooks registered for an event; shell hooks first, then Python handlers."""

    def __init__(
        self,
        shell: Mapping[str, Sequence[str]] | None = None,
        *,
        timeout_seconds: float = 10.0,
    ) -> None:
        if timeout_seconds <= 0:
            raise ConfigError("hooks timeout must be positive", hint="set [hooks] timeout_seconds")
        self.timeout_seconds = timeout_seconds
        self._hooks: dict[HookEvent, list[_Hook]] = {}
        for name, lines in (shell or {}).items():
            event = hook_event(name)
            for line in lines:
                self._hooks.setdefault(event, []).append(_ShellHook(tuple(split_command(line))))

    @classmethod
    def from_config(cls, section: HooksSection) -> HookRunner:
        return cls(section.shell, timeout_seconds=section.timeout_seconds)

    def add(self, event: str, handler: HookHandler) -> None:
        self._hooks.setdefault(hook_event(event), []).append(_PythonHook(handler))

    def has(self, event: str) -> bool:
        return bool(self._hooks.get(hook_event(event)))

    async def fire(self, event: str, data: Mapping[str, Any]) -> HookDecision:
        """Run the hooks of ``event`` with ``data`` (include ``session_id``).

        Returns the combined decision for ``before_tool_call`` and "continue" for every other
        event. Never raises for anything a hook does.
        """
        kind = hook_event(event)
        hooks = list(self._hooks.get(kind, ()))
        if not hooks:
            return _CONTINUE
        payload: dict[str, Any] = {"event": kind.value, "session_id": "", **data}
        if kind is HookEvent.BEFORE_TOOL_CALL:
            return await self._decide(hooks, payload)
        body = _encode(payload)
        async with anyio.create_task_group() as group:
            for hook in hooks:
                group.start_soon(self._notify, hook, kind, body)
        return _CONTINUE

    async def _decide(self, hooks: list[_Hook], payload: dict[str, Any]) -> HookDecision:
        # Sequential: each hook sees the arguments as the hooks before it rewrote them.
        rewritten = False
        for hook in hooks:
            try:
                decision = await self._run(hook, HookEvent.BEFORE_TOOL_CALL, _encode(payload))
            except HookFailed as exc:
                log.warning("before_tool_call hook failed, denying the call: %s", exc.message)
                return HookDecision.deny(exc.message)
            except Exception as exc:  # a bug in the runner itself still fails closed
                log.exception("before_tool_call hook %s crashed, denying", hook.name)
                return HookDecision.deny(f"hook {hook.name} crashed: {exc!r}")
            if decision.denied:
                return decision
            if decision.action == "rewrite" and decision.arguments is not None:
                payload = {**payload, "arguments": decision.arguments}
                rewritten = True
        return HookDecision.rewrite(payload["arguments"]) if rewritten else _CONTINUE

    async def _notify(self, hook: _Hook, kind: HookEvent, body: bytes) -> None:
        try:
            await self._run(hook, kind, body)
        except HookFailed as exc:
            log.warning("%s hook failed: %s", kind.value, exc.message)
        except Exception:
            log.exception("%s hook %s crashed", kind.value, hook.name)

    async def _run(self, hook: _Hook, kind: HookEvent, body: bytes) -> HookDecision:
        decide = kind is HookEvent.BEFORE_TOOL_CALL
        if isinstance(hook, _ShellHook):
            return await self._run_shell(hook, kind, body, decide)
        return await self._run_python(hook, body, decide)

    async def _run_python(self, hook: _PythonHook, body: bytes, decide: bool) -> HookDecision:
        result: object = None
        with anyio.move_on_after(self.timeout_seconds) as scope:
            try:
                result = await hook.handler(json.loads(body))  # its own copy: no side channel
            except Exception as exc:
                raise HookFailed(f"hook {hook.name} raised {type(exc).__name__}: {exc}") from exc
        if scope.cancelled_caught:
            raise HookFailed(f"hook timed out after {self.timeout_seconds:g} s: {hook.name}")
        if result is None:
            return _CONTINUE
        if not isinstance(result, HookDecision):
            raise HookFailed(
                f"hook {hook.name} returned {type(result).__name__}, not a HookDecision or None"
            )
        return _checked(result) if decide else _CONTINUE

    async def _run_shell(
        self, hook: _ShellHook, kind: HookEvent, body: bytes, decide: bool
    ) -> HookDecision:
        try:
            process = await anyio.open_process(
                list(hook.argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=hook_env(kind.value),
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
        except OSError as exc:
            raise HookFailed(
                f"hook {hook.name} cannot start: {exc.strerror or exc}",
                hint="check the command line in [hooks] shell",
            ) from None
        stdout, stderr = bytearray(), bytearray()
        scope = anyio.move_on_after(self.timeout_seconds)
        try:
            with scope:
                async with anyio.create_task_group() as group:
                    if process.stdin is not None:
                        group.start_soon(_feed, process.stdin, body)
                    if process.stdout is not None:
                        group.start_soon(_drain, process.stdout, stdout, _MAX_STDOUT)
                    if process.stderr is not None:
                        group.start_soon(_drain, process.stderr, stderr, _MAX_STDERR)
                await process.wait()
        finally:
            if scope.cancelled_caught or process.returncode is None:
                _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if scope.cancelled_caught:
            raise HookFailed(
                f"hook timed out after {self.timeout_seconds:g} s and was killed: {hook.name}",
                hint="make the hook faster or raise [hooks] timeout_seconds",
            )
        if process.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip().splitlines()
            raise HookFailed(
                f"hook {hook.name} exited with status {process.returncode}"
                + (f": {detail[0][:300]}" if detail else "")
            )
        return _parse_decision(bytes(stdout), hook.name) if decide else _CONTINUE


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, default=str, ensure_ascii=False).encode()


def _checked(decision: HookDecision) -> HookDecision:
    if decision.action == "rewrite" and not isinstance(decision.arguments, dict):
        raise HookFailed("a rewrite decision needs the new arguments as a JSON object")
    return decision


def _parse_decision(stdout: bytes, name: str) -> HookDecision:
    text = stdout.decode("utf-8", "replace").strip()
    if not text:
        return _CONTINUE
    try:
        raw: Any = json.loads(text)
    except ValueError:
        raise HookFailed(
            f"hook {name} printed something that is not a JSON decision: {text[:200]!r}",
            hint='print nothing, or one JSON object with a "decision" key; log to stderr',
        ) from None
    if not isinstance(raw, dict):
        raise HookFailed(f"hook {name} printed JSON that is not an object")
    fields: dict[str, Any] = raw  # type: ignore[assignment]
    decision = fields.get("decision", "continue")
    if decision == "continue":
        return _CONTINUE
    if decision == "deny":
        return HookDecision.deny(str(fields.get("reason") or ""))
    if decision == "rewrite":
        arguments = fields.get("arguments")
        if not isinstance(arguments, dict):
            raise HookFailed(f'hook {name} asked to rewrite without an "arguments" object')
        return HookDecision.rewrite(arguments)  # type: ignore[arg-type]
    raise HookFailed(
        f"hook {name} printed the unknown decision {decision!r}",
        hint='use "continue", "deny" or "rewrite"',
    )


async def _feed(stream: ByteSendStream, body: bytes) -> None:
    # A hook may exit without reading its stdin: that is its business, not an error.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send(body)
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.aclose()


async def _drain(stream: ByteReceiveStream, into: bytearray, cap: int) -> None:
    # Keep reading past the cap so a chatty hook never blocks on a full pipe.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        async for chunk in stream:
            if len(into) < cap:
                into.extend(chunk[: cap - len(into)])


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ApprovalHooks:
    """Tells the hooks when a person is asked and how it ended: the ``on_asked`` /
    ``on_resolved`` observers of an ``ApprovalManager`` (they observe, they cannot answer)."""

    def __init__(self, hooks: HookRunner) -> None:
        self.hooks = hooks

    @staticmethod
    def _about(request: ApprovalRequest) -> dict[str, Any]:
        return {"session_id": str(request.session_id or ""), "request_id": str(request.request_id)}

    async def asked(self, request: ApprovalRequest) -> None:
        await self.hooks.fire(
            HookEvent.APPROVAL_NEEDED,
            {
                **self._about(request),
                "summary": request.summary,
                "risk": request.risk.value,
                "reason": request.reason,
                "details": list(request.details),
                "action": request.action.model_dump(mode="json"),
            },
        )

    async def resolved(self, request: ApprovalRequest, answer: ApprovalDecision | Deferred) -> None:
        if isinstance(answer, Deferred):
            resolved: dict[str, Any] = {
                **self._about(request),
                "outcome": "deferred",
                "why": answer.why,
            }
        else:
            resolved = {
                **self._about(request),
                "outcome": "allowed" if answer.allowed else "denied",
                "option": answer.option.value,
                "decided_by": answer.decided_by or "",
                "reason": answer.reason or "",
            }
        await self.hooks.fire(HookEvent.APPROVAL_RESOLVED, resolved)
