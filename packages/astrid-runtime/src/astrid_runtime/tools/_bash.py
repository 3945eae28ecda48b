"""bash: run a command line in the session's working directory.

The whole process group is killed on timeout or cancellation (no orphaned grandchildren), the
environment is an allow-list (API keys and tokens of the host never reach the command), output
is capped, and ``cd`` persists between calls. The command line itself was authorized by the
interceptor, which parsed every simple command in it before we got here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from typing import Any

import anyio

from astrid_core import AstridTimeoutError, BadInputError, JsonObject, SensitiveAction, ShellCommand

from ._base import ToolContext, cap_output, require

__all__ = ["Bash", "scrubbed_env", "SAFE_ENV"]

SAFE_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "TZ",
)
_SECRET_NAME = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
MAX_TIMEOUT_SECONDS = 600.0
_CWD_MARK = "__ASTRID_CWD__"


def scrubbed_env(allow: tuple[str, ...] = ()) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in (*SAFE_ENV, *allow):
        value = os.environ.get(name)
        if value is None:
            continue
        if name not in allow and any(part in name.upper() for part in _SECRET_NAME):
            continue
        env[name] = value
    return env


class Bash:
    name: str = "bash"
    description: str = (
        "Run a shell command in the working directory (cd persists). Timeout 120 s by "
        "default, 600 s max; the environment holds no secrets."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "timeout": {"type": "number", "minimum": 1, "maximum": 600},
        },
        "required": ["command"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return ShellCommand(command=require(args, "command"), cwd=ctx.cwd)

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, ShellCommand)
        timeout = float(args.get("timeout") or ctx.bash_timeout_seconds)  # type: ignore[arg-type]
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise BadInputError(f"timeout must be within (0, {MAX_TIMEOUT_SECONDS:g}] seconds")
        # Print the final working directory after the command so `cd` persists to the next call.
        script = (
            f"{action.command}\n__astrid_status=$?\n"
            f'printf "\\n{_CWD_MARK}%s" "$PWD"\nexit $__astrid_status'
        )
        env = scrubbed_env(ctx.env_allow)
        argv = ["/bin/bash", "-c", script]
        if ctx.sandbox_bash:
            argv, env = _sandboxed(argv, env, action.cwd, ctx)
        process = await anyio.open_process(
            argv,
            cwd=action.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        chunks: list[bytes] = []
        try:
            with anyio.fail_after(timeout):
                assert process.stdout is not None
                async for chunk in process.stdout:
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > 4 * 1024 * 1024:
                        break
                await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            raise AstridTimeoutError(
                f"command timed out after {timeout:g} s and was killed",
                hint="pass a larger timeout (max 600 s) or run it in the background",
            ) from None
        except BaseException:
            _kill_group(process.pid)  # cancelled: take the whole process group down with us
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()
        text = b"".join(chunks).decode("utf-8", errors="replace")
        if _CWD_MARK in text:
            text, _, cwd = text.rpartition(_CWD_MARK)
            if cwd and await anyio.Path(cwd).is_dir():
                ctx.cwd = cwd
        status = process.returncode
        return cap_output(text.rstrip("\n") + ("" if status == 0 else f"\n[exit status {status}]"))


def _sandboxed(
    argv: list[str], env: dict[str, str], cwd: str, ctx: ToolContext
) -> tuple[list[str], dict[str, str]]:
    """Wrap the shell in astrid-mcp's Landlock launcher: defence in depth behind the policy."""
    from astrid_mcp.sandbox import launcher_argv

    scratch = os.path.join(tempfile.gettempdir(), f"astrid-scratch-{ctx.session_id}")
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    wrapped = launcher_argv(
        argv[0],
        argv[1:],
        read_paths=[ctx.workspace, cwd],
        write_paths=[ctx.workspace, scratch],
        path_programs=True,
    )
    return wrapped, env | {"TMPDIR": scratch}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
