"""Installed capsules inside agent sessions: their tools, skills and interceptors.

Each session loads every installed capsule once, at the start of its first turn (loading reads
the install records from storage, which the synchronous ``_attach`` cannot). Before anything
from a capsule is used its installed tree is re-hashed against the install record, and its
``.wasm`` against the manifest's BLAKE3: a capsule swapped after install is refused with a
clear error, an audit entry and a status warning, and the session goes on without it.

A capsule is third-party code and text, so:
  * its ``[[tool]]`` entries become ``capsule__<capsule>__<tool>`` tools that the agent loop
    intercepts like any built-in tool (a ``CapsuleHostCall`` action); every host call the WASM
    makes inside goes through the same session interceptor (``HostContext.guard``), limited to
    what the manifest declared *and* the user accepted at install;
  * its ``[[skill]]`` text joins the system prompt fenced as untrusted content;
  * a ``BeforeToolCall`` ``[[interceptor]]`` may deny a call, never rewrite one, and an
    interceptor that cannot answer cleanly denies the call (fail closed, like shell hooks);
  * the other ``[[interceptor]]`` events (``AfterToolCall``, ``UserPrompt``, ``SessionStart``,
    ``SessionEnd``) only *notify* the capsule: its answer may carry an ``annotation``, which is
    logged and audited and changes nothing; a failing one is logged, audited and shown in the
    status warnings, and the turn goes on. A capsule cannot block a ``UserPrompt``: the person
    at the keyboard is the authority here and a third-party package must not be able to
    silence them; everything a prompt leads to is still checked at each tool call (where a
    ``BeforeToolCall`` interceptor may deny). ``SessionStart`` is delivered when the session's
    capsules load, at its first prompt in this daemon (before that no capsule of the session
    runs), so a session resumed after a restart gets one too (``history_messages`` > 0).
    Every event payload goes through the audit redactor first: no secret reaches a capsule;
  * its ``[[mcp_server]]`` entries run as untrusted, sandboxed astrid-mcp servers
    (``capsule_mcp_configs``), one process per (capsule, workspace): its roots and sandbox are
    the workspace paths the user accepted (``capsule_workspace_paths``), its environment the
    scrubbed one plus the variables the capsule declared, and every launch (restarts too)
    re-hashes the installed tree first. Their tools join the sessions of that workspace as
    ``mcp__capsule-<capsule>-<id>__<tool>``, authorized like any MCP tool (``McpToolCall``).

Loading runs from a ``user_prompt`` hook, so it is bounded by ``[hooks] timeout_seconds``; a
load cut short is tried again at the next turn.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from astrid_audit import AuditLog, AuditTrail, Outcome, OutcomeKind
from astrid_capsule.cron import cron_export
from astrid_capsule.errors import CapsuleLoadRefused
from astrid_capsule.install import CapsuleInstaller, InstallRecord
from astrid_capsule.interceptors import before_tool_call_answer, notify_answer
from astrid_capsule.mcp_host import (
    capsule_mcp_configs,
    capsule_workspace_paths,
    open_network_warning,
    server_instance,
)
from astrid_capsule.secrets import SECRETS_KEY_FILE, CapsuleSecrets
from astrid_capsule.static import context_text, expand_command, find_command
from astrid_capsule.verified import VerifiedCapsule, untrusted_skills, verify_installed
from astrid_core import AstridError, CapsuleHostCall, JsonObject, SensitiveAction
from astrid_core.storage import Storage

from ..agent import HookDecision, HookEvent, HookRunner
from ..tools import ToolContext, cap_output

if TYPE_CHECKING:
    from astrid_approval import SecurityInterceptor
    from astrid_capsule.wasm import WasmCapsule, WasmLimits
    from astrid_mcp import McpServerConfig

    from .._no_mcp import LazyMcpBridge
    from ..agent import AgentLoop

__all__ = ["CapsuleHost", "CapsuleTool", "capsule_tool_name", "MAX_SKILL_CHARS"]

log = logging.getLogger("astrid.runtime.capsules")

MAX_SKILL_CHARS = 32_000  # per capsule: a skill is guidance, not a corpus
MAX_TOOL_NAME = 64  # provider APIs allow [A-Za-z0-9_-]{1,64}
_MAX_WARNINGS = 100
# Of the [hooks] timeout that bounds a turn's capsule work: what may go to waiting for MCP
# servers to start (the rest is for loading). A slower server's tools join a later turn.
_MCP_WAIT_SHARE = 0.8
# Of the same timeout: what notifying a hook's capsule interceptors may take, so that a slow
# one is reported (status warning, audit) before the hook runner cuts the whole hook off.
_NOTIFY_SHARE = 0.9


def capsule_tool_name(capsule: str, tool: str) -> str | None:
    """The name the model sees, or None when it would not fit (never truncated: collisions)."""
    name = f"capsule__{capsule}__{tool}"
    return name if len(name) <= MAX_TOOL_NAME else None


@dataclass
class CapsuleTool:
    """A ``[[tool]]`` of a WASM capsule, as a runtime Tool the agent loop authorizes and runs."""

    name: str
    description: str
    input_schema: dict[str, Any]
    capsule: str
    tool: str
    export: str
    plugin: WasmCapsule = field(repr=False)

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        del ctx
        return CapsuleHostCall(capsule=self.capsule, function=self.tool, args=dict(args))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        del args, ctx
        assert isinstance(action, CapsuleHostCall)
        # The export gets exactly the arguments that were authorized.
        output = await self.plugin.call(self.export, json.dumps(action.args))
        return cap_output(output.decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class _Interceptor:
    """An ``[[interceptor]]`` of a loaded capsule: its manifest event and WASM export."""

    event: str
    capsule: str
    plugin: WasmCapsule
    export: str


@dataclass(eq=False)
class _SessionCapsules:
    """What the capsules put into one session. Held by the session's ToolContext."""

    loop: AgentLoop
    interceptor: SecurityInterceptor
    loaded: bool = False
    plugins: list[WasmCapsule] = field(default_factory=list["WasmCapsule"])
    interceptors: list[_Interceptor] = field(default_factory=list["_Interceptor"])
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    # MCP servers of its capsules: running name -> (capsule, server name the model sees).
    mcp_servers: dict[str, tuple[str, str]] = field(default_factory=dict[str, tuple[str, str]])

    def close(self) -> None:
        for plugin in self.plugins:
            plugin.close()
        self.plugins.clear()
        self.interceptors.clear()

    def interceptors_of(self, event: str) -> list[_Interceptor]:
        return [hook for hook in self.interceptors if hook.event == event]


class CapsuleHost:
    """Loads installed capsules into sessions; one per runtime."""

    def __init__(
        self,
        home: Path,
        storage: Storage,
        *,
        audit: AuditLog,
        hooks: HookRunner,
        limits: WasmLimits | None = None,
        mcp: LazyMcpBridge | None = None,
    ) -> None:
        self.installer = CapsuleInstaller(home, storage)
        self.secrets = CapsuleSecrets(storage, home / SECRETS_KEY_FILE)
        self.mcp = mcp
        self.storage = storage
        self.audit = audit
        self.hooks = hooks
        self.limits = limits
        # Per capsule, what is wrong with it right now (refused, parts skipped): for status.
        self._problems: dict[str, list[str]] = {}
        # Per capsule, the install (revision, content hash) last verified clean.
        self._verified_as: dict[str, tuple[int, str]] = {}
        self._sessions: weakref.WeakValueDictionary[str, _SessionCapsules] = (
            weakref.WeakValueDictionary()
        )
        self._listening: set[HookEvent] = set()
        hooks.add(HookEvent.USER_PROMPT, self._on_user_prompt)
        hooks.add(HookEvent.SESSION_END, self._on_session_end)

    # ------------------------------------------------------------------ sessions

    def attach(self, loop: AgentLoop, interceptor: SecurityInterceptor) -> None:
        """Give a session its capsules; they are loaded when its next turn starts."""
        state = _SessionCapsules(loop, interceptor)
        loop.context.extra["capsules"] = state  # the session owns it; this host only looks
        self._sessions[str(loop.session.id)] = state

    async def _on_user_prompt(self, event: Mapping[str, Any]) -> None:
        state = self._sessions.get(str(event.get("session_id", "")))
        if state is not None:
            start = anyio.current_time()
            await self._ensure_loaded(state)
            await self._install_mcp_tools(
                state, start + self.hooks.timeout_seconds * _MCP_WAIT_SHARE
            )
            payload = {"session_id": event.get("session_id"), "prompt": event.get("prompt")}
            await self._deliver(state, "UserPrompt", payload, start)

    async def _on_session_end(self, event: Mapping[str, Any]) -> None:
        state = self._sessions.pop(str(event.get("session_id", "")), None)
        if state is not None:
            try:
                if state.loaded:  # a session whose capsules never loaded told them nothing
                    payload = {"session_id": event.get("session_id")}
                    await self._deliver(state, "SessionEnd", payload, anyio.current_time())
            finally:
                state.close()

    async def _ensure_loaded(self, state: _SessionCapsules) -> None:
        async with state.lock:
            if state.loaded:
                return
            start = anyio.current_time()
            for capsule in await self.verified(state):
                await self._load_into(state, capsule)
            state.loaded = True
            session = state.loop.session
            payload = {
                "session_id": str(session.id),
                "workspace": session.workspace,
                "model": session.model,
                # Loading happens at the first prompt this daemon sees for the session.
                "history_messages": len(session.messages),
            }
            await self._deliver(state, "SessionStart", payload, start)

    # ------------------------------------------------------------------ verification

    async def verified(self, state: _SessionCapsules | None = None) -> list[VerifiedCapsule]:
        """Every installed capsule whose files still match its record; the others are refused
        (warned, and audited on the session's chain when there is one)."""
        found: list[VerifiedCapsule] = []
        records = sorted(await self.installer.list(), key=lambda r: r.name)
        installed = {record.name for record in records}
        self._problems = {k: v for k, v in self._problems.items() if k in installed}
        for record in records:
            try:
                found.append(await self._verify(record.name))
                stamp = (record.revision, record.content_hash)
                if self._verified_as.get(record.name) != stamp:
                    # A new install: what was wrong with the one before no longer applies.
                    # Problems of this install (an interceptor that failed in some session)
                    # stay listed until it is replaced; verifying again does not erase them.
                    self._problems.pop(record.name, None)
                    self._verified_as[record.name] = stamp
            except AstridError as exc:
                await self._refuse(state, record.name, exc)
        return found

    async def _verify(self, name: str) -> VerifiedCapsule:
        return await verify_installed(self.installer, name)

    async def _refuse(self, state: _SessionCapsules | None, name: str, exc: AstridError) -> None:
        log.warning("%s", exc)
        self._warn(name, exc.message)
        session_id = state.loop.session.id if state is not None else None
        # Refused whether or not it can be recorded (the trail logs a missing record).
        await AuditTrail(self.audit, session_id).denial(
            None, exc.message, detail={"layer": "capsule", "capsule": name, "stage": "load"}
        )

    def _warn(self, capsule: str, message: str) -> None:
        problems = self._problems.setdefault(capsule, [])
        if message not in problems and len(problems) < _MAX_WARNINGS:
            problems.append(message)

    @property
    def warnings(self) -> list[str]:
        """What is wrong with installed capsules as last seen (refusals, skipped parts)."""
        return [message for name in sorted(self._problems) for message in self._problems[name]]

    # ------------------------------------------------------------------ loading

    async def _load_into(self, state: _SessionCapsules, capsule: VerifiedCapsule) -> None:
        loop = state.loop
        try:
            skills = cap_output(capsule.skills_text(), MAX_SKILL_CHARS)
            context = context_text(capsule)
        except OSError as exc:
            await self._refuse(
                state,
                capsule.name,
                CapsuleLoadRefused(
                    f"capsule {capsule.name}: cannot read a skill or context file: {exc}"
                ),
            )
            return
        if skills:
            loop.system_prompt += "\n\n" + untrusted_skills(capsule.name, skills)
            loop.session.has_untrusted = True  # third-party text is in the context now
        if context:
            loop.system_prompt += "\n\n" + context
            loop.session.has_untrusted = True
        if capsule.manifest.mcp_server:
            await self._start_mcp_servers(state, capsule)
        if capsule.wasm is None:
            if capsule.manifest.tool or capsule.manifest.interceptor:
                message = f"capsule {capsule.name}: tools and interceptors need a [component]"
                self._warn(capsule.name, message)
            return
        try:
            plugin = await self._instantiate(state, capsule)
        except AstridError as exc:
            await self._refuse(state, capsule.name, exc)
            return
        state.plugins.append(plugin)
        exports = set(plugin.exports([t.export for t in capsule.manifest.tool]))
        for spec in capsule.manifest.tool:
            name = capsule_tool_name(capsule.name, spec.name)
            if spec.export not in exports or name is None or loop.tools.get(name) is not None:
                why = (
                    f"it has no export {spec.export!r}"
                    if spec.export not in exports
                    else "its name is too long or already taken"
                )
                self._warn(capsule.name, f"capsule {capsule.name}: tool {spec.name} skipped: {why}")
                continue
            loop.tools.add(
                CapsuleTool(
                    name=name,
                    description=(
                        f"[tool {spec.name} of capsule {capsule.name}; its description is the "
                        f"capsule's, untrusted] {spec.description}"
                    ),
                    input_schema=dict(spec.input_schema) or {"type": "object"},
                    capsule=capsule.name,
                    tool=spec.name,
                    export=spec.export,
                    plugin=plugin,
                )
            )
        self._add_job_tools(state, capsule, plugin)
        for hook in capsule.manifest.interceptor:
            # Without `export`, the conventional one (BeforeToolCall -> before_tool_call). A
            # missing export is not skipped: calling it fails, which denies a BeforeToolCall
            # (fail closed) and is reported for the other events.
            state.interceptors.append(_Interceptor(hook.event, capsule.name, plugin, hook.handler))
            self._listen(hook.event)

    def _add_job_tools(
        self, state: _SessionCapsules, capsule: VerifiedCapsule, plugin: WasmCapsule
    ) -> None:
        """A dotted ``[[cron]]`` action that names an export, not a ``[[tool]]`` (seed 001's
        ``astrid.github.sync``), is also offered as a tool, so that a person can run the job
        in a session and allow it (Allow Workspace) for its unattended runs, as any job's tool.
        It is authorized like any capsule tool (``CapsuleHostCall``)."""
        loop = state.loop
        for cron in capsule.manifest.cron:
            function, export = cron_export(capsule, cron)
            name = capsule_tool_name(capsule.name, function)
            if any(t.name == function for t in capsule.manifest.tool) or name is None:
                continue
            if loop.tools.get(name) is not None or not plugin.exports([export]):
                self._warn(
                    capsule.name,
                    f"capsule {capsule.name}: cron job {cron.name}: no export {export!r} or "
                    "its tool name is taken",
                )
                continue
            loop.tools.add(
                CapsuleTool(
                    name=name,
                    description=(
                        f"[the scheduled job {cron.name} of capsule {capsule.name} "
                        f"({cron.schedule}): runs its export {export} now, as its schedule "
                        "does; takes no arguments]"
                    ),
                    input_schema={"type": "object", "properties": {}},
                    capsule=capsule.name,
                    tool=function,
                    export=export,
                    plugin=plugin,
                )
            )

    async def _instantiate(self, state: _SessionCapsules, capsule: VerifiedCapsule) -> WasmCapsule:
        from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits

        assert capsule.wasm is not None
        assert capsule.manifest.component is not None
        granted = capsule.granted
        if granted.net:  # its tool calls are sinks once the session holds untrusted content
            state.interceptor.net_capsules.add(capsule.name)
        grants = HostGrants(
            fs_read=granted.fs_read,
            fs_write=granted.fs_write,
            net=granted.net,
            kv=granted.kv,
            config={k: v for k, v in capsule.manifest.config.items() if k in granted.config},
            # Only an admin's `[security] allow_private_networks = true` lets a capsule reach
            # loopback or private addresses it declared (e.g. a local model server).
            allow_private_network=state.interceptor.policy.allow_private_networks,
        )
        session = state.loop.session
        context = HostContext(
            capsule=capsule.name,
            workspace=Path(session.workspace),
            grants=grants,
            guard=state.interceptor,  # every host call: the session's interceptor decides
            limits=self.limits or WasmLimits(),
            storage=self.storage,
            on_denied=self._host_denial_auditor(state),
            denied_link=state.interceptor.policy.denied_link,
            denied_path=state.interceptor.policy.denied_path,
        )
        wasm, wasi = capsule.wasm, capsule.manifest.component.wasi
        # Compiling a module blocks for milliseconds to seconds: keep it off the event loop.
        return await anyio.to_thread.run_sync(
            lambda: WasmCapsule(capsule.name, wasm, context, wasi=wasi)
        )

    def _host_denial_auditor(self, state: _SessionCapsules) -> Any:
        session_id = state.loop.session.id

        async def audit_denial(
            capsule: str, function: str, action: SensitiveAction | None, reason: str
        ) -> None:
            # Refused before the interceptor saw it (undeclared, or outside the workspace):
            # recorded here, so every refusal leaves a trace whoever refused.
            await AuditTrail(self.audit, session_id).denial(
                action,
                f"capsule {capsule} host call {function} refused: {reason}",
                detail={"layer": "capsule", "capsule": capsule, "function": function},
            )

        return audit_denial

    # ------------------------------------------------------------------ interceptors

    def _listen(self, event: str) -> None:
        # Registered on first use: a runtime without interceptor capsules runs no extra hook.
        # UserPrompt, SessionStart and SessionEnd ride on hooks this host always has.
        handlers: dict[str, tuple[HookEvent, Any]] = {
            "BeforeToolCall": (HookEvent.BEFORE_TOOL_CALL, self._before_tool_call),
            "AfterToolCall": (HookEvent.AFTER_TOOL_CALL, self._after_tool_call),
        }
        if event in handlers:
            kind, handler = handlers[event]
            if kind not in self._listening:
                self._listening.add(kind)
                self.hooks.add(kind, handler)

    async def _before_tool_call(self, event: Mapping[str, Any]) -> HookDecision | None:
        state = self._sessions.get(str(event.get("session_id", "")))
        if state is None:
            return None
        await self._ensure_loaded(state)
        fields = ("session_id", "call_id", "tool", "arguments")
        body = self._event_body("BeforeToolCall", {k: event.get(k) for k in fields})
        for hook in state.interceptors_of("BeforeToolCall"):
            answer = before_tool_call_answer(
                hook.capsule, await hook.plugin.call(hook.export, body)
            )
            if answer.annotation:
                note = f"annotation: {answer.annotation}"
                await self._audit_interceptor(state, hook, note, success=True)
            if answer.deny_reason is not None:
                return HookDecision.deny(answer.deny_reason)
        return None

    async def _after_tool_call(self, event: Mapping[str, Any]) -> None:
        state = self._sessions.get(str(event.get("session_id", "")))
        if state is not None and state.loaded:
            fields = ("session_id", "call_id", "tool", "arguments", "ok", "denied", "output")
            payload = {k: event.get(k) for k in fields}  # output: capped by the agent loop
            await self._deliver(state, "AfterToolCall", payload, anyio.current_time())

    def _event_body(self, event: str, payload: Mapping[str, Any]) -> str:
        redactor = getattr(self.audit, "redactor", None)
        data: Any = {"event": event, **payload}
        if redactor is not None:  # known secret values and shapes never reach a capsule
            data = redactor.value(data)
        return json.dumps(data, default=str, ensure_ascii=False)

    async def _deliver(
        self, state: _SessionCapsules, event: str, payload: Mapping[str, Any], since: float
    ) -> None:
        """Tell the session's ``event`` interceptors; what they answer changes nothing.

        Bounded together, inside the hook that called this (started at ``since``), so a slow
        capsule is reported here rather than cut off silently by the hook timeout."""
        hooks = state.interceptors_of(event)
        if not hooks:
            return
        body = self._event_body(event, payload)
        deadline = since + self.hooks.timeout_seconds * _NOTIFY_SHARE
        for hook in hooks:
            raw: bytes | None = None
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                try:
                    raw = await hook.plugin.call(hook.export, body)
                except AstridError as exc:
                    await self._interceptor_failed(state, hook, exc.message)
                    continue
            if raw is None:
                why = f"no answer within the {self.hooks.timeout_seconds:g} s hook timeout"
                await self._interceptor_failed(state, hook, why)
                continue
            try:
                note = notify_answer(hook.capsule, event, raw).annotation
            except AstridError as exc:
                await self._interceptor_failed(state, hook, exc.message)
                continue
            if note:
                await self._audit_interceptor(state, hook, f"annotation: {note}", success=True)

    async def _interceptor_failed(
        self, state: _SessionCapsules, hook: _Interceptor, why: str
    ) -> None:
        why = why.removeprefix(f"capsule {hook.capsule}: ")
        message = f"capsule {hook.capsule}: its {hook.event} interceptor failed: {why}"
        log.warning("%s", message)
        self._warn(hook.capsule, message)
        await self._audit_interceptor(state, hook, message, success=False)

    async def _audit_interceptor(
        self, state: _SessionCapsules, hook: _Interceptor, reason: str, *, success: bool
    ) -> None:
        if success:
            log.info("capsule %s, %s: %s", hook.capsule, hook.event, reason)
        try:
            await AuditTrail(self.audit, state.loop.session.id).outcome(
                Outcome(
                    kind=OutcomeKind.EXECUTED,
                    success=success,
                    reason=reason,
                    detail={
                        "layer": "capsule",
                        "capsule": hook.capsule,
                        "stage": "interceptor",
                        "event": hook.event,
                    },
                )
            )
        except AstridError as exc:  # the notice is logged; say the record is missing
            log.error("could not audit an interceptor of capsule %s: %s", hook.capsule, exc)

    # ------------------------------------------------------------------ MCP servers

    async def _start_mcp_servers(self, state: _SessionCapsules, capsule: VerifiedCapsule) -> None:
        workspace = state.loop.session.workspace
        try:
            if self.mcp is None:
                raise AstridError("this runtime has no MCP bridge")
            # Roots = the readable paths (they include the writable ones), as the sandbox has.
            roots, _ = capsule_workspace_paths(capsule.granted, workspace)
            configs = [
                server_instance(config, roots)
                for config in capsule_mcp_configs(
                    capsule, workspace=workspace, env_values=await self._declared_env(capsule)
                )
            ]
            warning = open_network_warning(capsule, configs)
            if warning is not None:
                self._warn(capsule.name, warning)
            await self.mcp.ensure_servers(
                configs,
                roots=[Path(root) for root in roots],
                before_launch=self._launch_check(capsule.record),
            )
        except AstridError as exc:
            self._warn(
                capsule.name,
                f"capsule {capsule.name}: its MCP servers are not started: {exc.message}",
            )
            return
        for config, spec in zip(configs, capsule.manifest.mcp_server, strict=True):
            state.mcp_servers[config.name] = (capsule.name, f"capsule-{capsule.name}-{spec.id}")

    async def _declared_env(self, capsule: VerifiedCapsule) -> dict[str, str]:
        """Values of the capsule's ``[env]`` entries: stored secrets, else declared defaults."""
        values = {
            name: var.default
            for name, var in capsule.manifest.env.items()
            if var.default is not None and not var.is_secret
        }
        stored = set(await self.secrets.names(capsule.name))
        redactor = getattr(self.audit, "redactor", None)
        for name in capsule.manifest.secrets:
            if name in stored:
                values[name] = await self.secrets.reveal(capsule.name, name)
                if redactor is not None:  # masked wherever a tool's output would show it
                    redactor.add_secret(values[name])
        return values

    def _launch_check(self, record: InstallRecord) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            # Before every launch, restarts included: the program and the scripts it runs are
            # the capsule's files, which must still be the ones the user accepted.
            current = await self.installer.verify_installed(record.name)
            if (current.revision, current.content_hash) != (record.revision, record.content_hash):
                raise CapsuleLoadRefused(
                    f"capsule {record.name} was updated since this MCP server was set up; the"
                    " old server is not started again",
                    hint="start a new session: it runs the updated capsule's servers",
                )

        return check

    async def _install_mcp_tools(self, state: _SessionCapsules, deadline: float) -> None:
        if self.mcp is None or not state.mcp_servers:
            return
        shown = {name: visible for name, (_, visible) in state.mcp_servers.items()}
        problems = await self.mcp.install_scoped(
            state.loop.tools,
            shown,
            scope=state.loop.context.workspace,
            wait_s=max(0.0, deadline - anyio.current_time()),
        )
        for server, message in problems:
            capsule = state.mcp_servers[server][0]
            self._warn(capsule, f"capsule {capsule}: {message}")

    async def expand_command(self, text: str) -> str:
        """``text`` itself, or, when it is ``/name args`` and an installed capsule has that
        ``[[command]]``, the prompt it expands to (it runs nothing by itself: the agent works
        on the prompt under the session's interceptor, like on any prompt)."""
        if not text.startswith("/"):
            return text
        name, _, args = text[1:].strip().partition(" ")
        command = find_command(await self.verified(), name)
        if command is None:
            return text
        return expand_command(command, args.strip())

    async def mcp_server_configs(self, workspace: str | None = None) -> list[McpServerConfig]:
        """The ``[[mcp_server]]`` entries of the verified capsules, as untrusted server configs."""
        configs: list[McpServerConfig] = []
        for capsule in await self.verified():
            configs += capsule_mcp_configs(capsule, workspace=workspace)
        return configs

    async def load_for_run(
        self, loop: AgentLoop, guard: SecurityInterceptor, name: str
    ) -> tuple[VerifiedCapsule, WasmCapsule]:
        """Capsule ``name`` verified now, its WASM instantiated in ``loop``'s session with every
        host call authorized by ``guard`` (a ``[[cron]]`` run). A capsule that fails
        verification is refused as at session load (warned, audited on that session's chain)
        and CapsuleLoadRefused raised. The caller closes the plugin."""
        state = _SessionCapsules(loop, guard)
        try:
            capsule = await self._verify(name)
            if capsule.wasm is None:
                raise CapsuleLoadRefused(f"capsule {name} has no [component] to run")
            return capsule, await self._instantiate(state, capsule)
        except AstridError as exc:
            await self._refuse(state, name, exc)
            raise
