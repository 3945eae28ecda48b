"""bash: run a command line in the session's working directory.

The whole process group is killed on timeout or cancellation, and background jobs are stopped
when the command returns (nothing the agent starts outlives the command that was authorized).
The environment is an allow-list (API keys and tokens of the host never reach the command),
output is capped, and ``cd`` persists between calls. The command line itself was authorized by
the interceptor, which parsed every simple command in it before we got here. With
``sandbox_bash`` the shell runs confined by astrid_workspace: bubblewrap namespaces (its own
files, processes, network), Landlock and seccomp inside, rlimits; its whole process tree dies
with it (pid namespace), ``setsid`` included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from astrid_core import (
    AstridTimeoutError,
    BadInputError,
    JsonObject,
    NotFoundError,
    SecurityDenied,
    SensitiveAction,
    ShellCommand,
)
from astrid_workspace import NETWORK_ABI, scrubbed_environment

from ._base import MAX_OUTPUT_CHARS, ToolContext, cap_output, require, truncation_marker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from astrid_workspace import Confinement, EgressProxy, ProtectedSnapshot, Quarantined

__all__ = ["Bash", "MAX_TIMEOUT_SECONDS", "bash_sandbox_report"]

MAX_TIMEOUT_SECONDS = 600.0
# Enough bytes for MAX_OUTPUT_CHARS characters of any UTF-8; the rest is counted, not kept.
_KEEP_BYTES = 4 * MAX_OUTPUT_CHARS
# After the shell exits, how long its leftover pipe holders (already killed) get to let go.
_DRAIN_GRACE_SECONDS = 1.0


def _timeout(args: JsonObject, ctx: ToolContext) -> float:
    value = args.get("timeout")
    if value is None:
        # A configured default above the maximum is clamped, not an error on every call.
        return min(ctx.bash_timeout_seconds, MAX_TIMEOUT_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInputError("argument 'timeout' must be a number of seconds")
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise BadInputError(
            f"timeout {value:g} s is outside (0, {MAX_TIMEOUT_SECONDS:g}] seconds",
            hint=f"pass at most {MAX_TIMEOUT_SECONDS:g}, or split the work into shorter commands",
        )
    return float(value)


class Bash:
    name: str = "bash"
    description: str = (
        "Run a shell command in the working directory (cd persists). Timeout 120 s by "
        "default, 600 s max; background jobs end with the command; the environment holds "
        "no secrets; output is capped at 30,000 characters."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
        },
        "required": ["command"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        _timeout(args, ctx)  # a bad timeout is refused before anyone is asked to approve
        return ShellCommand(command=require(args, "command"), cwd=ctx.cwd)

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, ShellCommand)
        timeout = _timeout(args, ctx)
        _check_cwd(action.cwd, ctx)
        # Under Landlock the shell may write only to the workspace and its scratch directory.
        where = _scratch_dir(ctx) if ctx.sandbox_bash else None
        fd, cwd_file = tempfile.mkstemp(prefix="astrid-cwd-", dir=where)
        os.close(fd)
        # Protected paths the bind mounts cannot cover (missing ones, or all of them under
        # sandbox = "landlock"): what the command creates or changes there is moved aside.
        snapshot = _protected_snapshot(ctx)
        quarantined: tuple[Quarantined, ...] = ()
        try:
            output, status = await _execute(action, ctx, timeout, cwd_file)
            new_cwd = _read_cwd(cwd_file)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(cwd_file)
            if snapshot is not None:
                # Shielded: a timeout or cancel still settles (the sandbox is dead by then).
                with anyio.CancelScope(shield=True):
                    quarantined = snapshot.settle()
                    if quarantined:
                        await _audit_quarantine(ctx, action, quarantined)
        if new_cwd is not None:
            ctx.cwd = new_cwd
        report = _quarantine_report(quarantined)
        if status == 0:
            return f"{report}{output}"
        note = f"[killed by signal {-status}]" if status < 0 else f"[exit status {status}]"
        return f"{report}{output}\n{note}" if output else f"{report}{note}"


def _protected_snapshot(ctx: ToolContext) -> ProtectedSnapshot | None:
    if not ctx.sandbox_bash:
        return None
    from astrid_workspace import ProtectedSnapshot

    return ProtectedSnapshot([ctx.workspace, *(os.path.realpath(p) for p in ctx.sandbox_paths)])


def _quarantine_report(quarantined: tuple[Quarantined, ...]) -> str:
    if not quarantined:
        return ""
    lines = "\n".join(f"  {q.describe()}" for q in quarantined)
    return (
        "[astrid: the command created or changed paths that make the host run code later "
        "(git, direnv, editor, CI, Astrid config); sandboxed bash may not. Moved aside, "
        f"nothing deleted:\n{lines}\nRun git init / git config / hooks setup yourself "
        "outside Astrid if you meant it.]\n"
    )


async def _audit_quarantine(
    ctx: ToolContext, action: ShellCommand, quarantined: tuple[Quarantined, ...]
) -> None:
    """One audit entry per command that planted protected paths (the session's trail)."""
    trail = getattr(ctx.egress, "trail", None)  # the session's SecurityInterceptor
    if trail is None:
        return
    from astrid_audit import Outcome, OutcomeKind

    await trail.event(
        Outcome(
            kind=OutcomeKind.POLICY_BLOCKED,
            reason="sandboxed bash created or changed protected paths; moved aside",
            detail={
                "quarantined": [
                    {"path": q.path, "moved_to": q.moved_to, "change": q.change, "error": q.error}
                    for q in quarantined
                ]
            },
        ),
        action=action,
    )


def _check_cwd(cwd: str, ctx: ToolContext) -> None:
    if not os.path.isdir(cwd):
        ctx.cwd = ctx.workspace
        raise NotFoundError(
            f"the working directory {cwd} no longer exists",
            hint=f"the working directory is now the workspace, {ctx.workspace}; run it again",
        )
    if os.path.realpath(cwd) != cwd:
        raise SecurityDenied(
            f"the working directory {cwd} changed after it was authorized (it is now a "
            "symbolic link); not followed",
            hint="call the tool again so the new directory is checked",
        )


def _scratch_dir(ctx: ToolContext) -> str:
    # Per session, private, and writable under the sandbox: TMPDIR and the cwd file live here.
    scratch = os.path.join(tempfile.gettempdir(), f"astrid-scratch-{ctx.session_id}")
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    return scratch


def _read_cwd(cwd_file: str) -> str | None:
    try:
        with open(cwd_file, encoding="utf-8", errors="replace") as handle:
            written = handle.read(8192).rstrip("\n")
    except OSError:
        return None
    if not written or not os.path.isabs(written) or not os.path.isdir(written):
        return None
    return os.path.realpath(written)


async def _execute(
    action: ShellCommand, ctx: ToolContext, timeout: float, cwd_file: str
) -> tuple[str, int]:
    # The EXIT trap records where the shell ended up, whatever way the command exits; it is
    # set before the command so that nothing has to follow the command on the script's line.
    record_cwd = f"builtin pwd -P > {shlex.quote(cwd_file)} 2>/dev/null"
    script = f"trap {shlex.quote(record_cwd)} EXIT\n{action.command}"
    env = scrubbed_environment(allow=ctx.env_allow)
    argv = ["/bin/bash", "-c", script]
    async with contextlib.AsyncExitStack() as stack:
        if ctx.sandbox_bash:
            confinement = _confinement(ctx, action.cwd, timeout)
            if confinement.network == "proxy":
                # One proxy per command: every connection is authorized by this session's
                # interceptor, and nothing of it outlives the command.
                proxy = await stack.enter_async_context(_egress(ctx))
                confinement = dataclasses.replace(confinement, proxy_socket=proxy.socket_path)
                env = env | proxy.proxy_environment()
            argv, env = _sandboxed(argv, env, action.cwd, ctx, confinement)
        return await _run(argv, env, action.cwd, timeout)


async def _run(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> tuple[str, int]:
    process = await anyio.open_process(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one killpg reaches every child
    )
    output = _Output()
    try:
        with anyio.fail_after(timeout):
            await _wait_and_drain(process, output)
    except TimeoutError:
        _kill_group(process.pid)
        raise AstridTimeoutError(
            f"command timed out after {timeout:g} s; its whole process group was killed. "
            f"Output so far:\n{cap_output(output.text(), 2000)}",
            hint=f"pass a larger timeout (max {MAX_TIMEOUT_SECONDS:g} s) or do less per call",
        ) from None
    except BaseException:
        _kill_group(process.pid)  # cancelled: take the whole process group down with us
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()
    assert process.returncode is not None
    return output.text(), process.returncode


async def _wait_and_drain(process: anyio.abc.Process, output: _Output) -> None:
    assert process.stdout is not None
    stdout = process.stdout
    drained = anyio.Event()

    async def drain() -> None:
        async for chunk in stdout:
            output.add(chunk)
        drained.set()

    async with anyio.create_task_group() as group:
        group.start_soon(drain)
        await process.wait()
        # The shell is done; what is left in its group are background jobs. They end here, and
        # their death closes the pipe so the drain sees end-of-file.
        _kill_group(process.pid)
        with anyio.move_on_after(_DRAIN_GRACE_SECONDS):
            await drained.wait()
        group.cancel_scope.cancel()  # a holder that escaped the group (setsid) cannot hang us


class _Output:
    """The head of the output, and a count of everything after it."""

    def __init__(self) -> None:
        self._kept = bytearray()
        self._dropped = 0

    def add(self, chunk: bytes) -> None:
        room = _KEEP_BYTES - len(self._kept)
        self._kept += chunk[:room]
        self._dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        text = self._kept.decode("utf-8", errors="replace").rstrip("\n")
        if not self._dropped:
            return cap_output(text)
        shown = text[:MAX_OUTPUT_CHARS]
        omitted = len(self._kept) - len(shown.encode("utf-8", errors="replace")) + self._dropped
        return shown + truncation_marker(f"{omitted:,} more bytes")


def _confinement(ctx: ToolContext, cwd: str, timeout: float) -> Confinement:
    from astrid_workspace import Confinement, Limits

    if not ctx.bash_network:
        network = "none"
    elif ctx.egress is not None and ctx.sandbox_mode != "landlock":
        network = "proxy"  # its own network namespace; out only through the egress proxy
    else:
        # No interceptor to ask (library use), or Landlock alone: the host's network.
        network = "host"
    declared = tuple(os.path.realpath(p) for p in ctx.sandbox_paths)
    return Confinement(  # noqa: S604 - shell=True: the PATH programs are readable
        mode="landlock" if ctx.sandbox_mode == "landlock" else "bwrap",
        workspace=ctx.workspace,
        read_paths=(cwd,),
        write_paths=(*declared, _scratch_dir(ctx)),
        network=network,
        home_entries=ctx.sandbox_home_entries,
        shell=True,
        limits=Limits(cpu_seconds=math.ceil(timeout) + 1),
    )


def bash_sandbox_report(
    sandbox_bash: bool, *, network: bool = True, mode: str = "bwrap"
) -> tuple[str, str | None]:
    """(what confines the bash tool, a warning for `status` when it is less than configured)."""
    from astrid_workspace import Confinement, bwrap_path, confinement_layers

    base = "process tree killed with the command + scrubbed env"
    if not sandbox_bash:
        return f"{base}; no sandbox (sandbox_bash = false, admin config)", None
    confinement = Confinement(
        mode="landlock" if mode == "landlock" else "bwrap",
        network="proxy" if network else "none",
    )
    layers = confinement_layers(confinement)
    if confinement.mode == "bwrap" and bwrap_path() is None:
        return (
            f"{base}; {layers.describe()}",
            "bash commands are refused: bubblewrap (Debian package bubblewrap) is not "
            'installed; install it, or let an admin set [security] sandbox = "landlock"',
        )
    if confinement.mode == "landlock" and not network and layers.landlock_abi < NETWORK_ABI:
        return (
            f"{base}; {layers.describe()}",
            "bash commands are refused: [security] bash_network = false needs Landlock ABI "
            f"{NETWORK_ABI} (Linux 6.7 or later) to deny them the network",
        )
    warning = None
    if confinement.mode == "landlock":
        warning = (
            'bash runs under Landlock alone ([security] sandbox = "landlock"): host network '
            "and host unix sockets stay reachable, background processes can outlive commands"
        )
    return f"{base}; {layers.describe()}", warning


@contextlib.asynccontextmanager
async def _egress(ctx: ToolContext) -> AsyncIterator[EgressProxy]:
    from astrid_workspace import EgressProxy

    directory = tempfile.mkdtemp(prefix="astrid-egress-")
    try:
        proxy = EgressProxy(ctx.egress, who="a bash command", allowed_exact=ctx.egress_allow)
        async with proxy.serving(directory):
            yield proxy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sandboxed(
    argv: list[str], env: dict[str, str], cwd: str, ctx: ToolContext, confinement: Confinement
) -> tuple[list[str], dict[str, str]]:
    """Confine the shell: bubblewrap + Landlock + seccomp, defence in depth behind the policy."""
    from astrid_workspace import confined_argv, sandbox_status

    no_network = confinement.network == "none"
    if confinement.mode == "landlock" and no_network and sandbox_status().abi < NETWORK_ABI:
        raise SecurityDenied(
            "bash commands are to run without network ([security] bash_network = false), "
            'and the Landlock-only sandbox ([security] sandbox = "landlock") cannot '
            f"enforce that on this kernel (it needs Landlock ABI {NETWORK_ABI}, Linux "
            "6.7 or later); the command was not run",
            hint='let an admin set [security] sandbox = "bwrap" (bubblewrap), or run on '
            "a newer kernel",
        )
    if confinement.mode == "landlock" and sandbox_status().abi == 0:
        # Fail closed: the admin chose the Landlock-only sandbox, and this kernel has none.
        raise SecurityDenied(
            'bash commands run under the Landlock-only sandbox ([security] sandbox = "landlock") '
            "and this kernel has no Landlock; the command was not run",
            hint='let an admin set [security] sandbox = "bwrap" (bubblewrap), or set '
            "[security] sandbox_bash = false to run bash unconfined on purpose",
        )
    wrapped = confined_argv(argv[0], argv[1:], confinement, cwd=cwd)
    return wrapped, env | {"TMPDIR": _scratch_dir(ctx)}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
