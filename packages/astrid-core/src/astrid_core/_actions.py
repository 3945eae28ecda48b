"""SensitiveAction: the closed set of things an agent can ask the runtime to do.

The agent only *proposes* one of these; the security interceptor decides. Each action knows
its canonical resource URI (what capability patterns match), the permission it needs, its
default risk, the arguments caveats can inspect, and the one-line summary a human approves.

Paths must be absolute here. Resolving ``~``, ``..`` and symlinks needs the filesystem and a
workspace, so it happens in the approval layer before any policy or pattern sees the action.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import unicodedata
from typing import Annotated, Any, ClassVar, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from ._errors import BadInputError
from ._ids import SessionId
from ._json import JsonObject, JsonValue
from ._permissions import Permission
from ._risk import RiskLevel

__all__ = [
    "ActionBase",
    "McpToolCall",
    "FileRead",
    "FileWrite",
    "FileDelete",
    "DirectoryList",
    "ShellCommand",
    "NetworkRequest",
    "CapsuleHostCall",
    "SubAgentSpawn",
    "LlmCall",
    "McpSampling",
    "TranscriptAccess",
    "SensitiveAction",
    "action_from_json",
    "action_to_json",
    "one_line",
]


class ActionBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_risk: ClassVar[RiskLevel] = RiskLevel.MEDIUM
    permission: ClassVar[Permission] = Permission.INVOKE

    @property
    def resource(self) -> str:
        """Canonical resource URI that capability patterns and policies match."""
        raise NotImplementedError

    @property
    def summary(self) -> str:
        """The approval prompt line a human reads."""
        raise NotImplementedError

    def arguments(self) -> JsonObject:
        """The values caveats may inspect (e.g. a recipient, a URL host)."""
        return {}

    def content_size(self) -> int:
        """Bytes the action carries besides its arguments (a file's new content). They count
        toward the argument size limit; the action records only their size and BLAKE3."""
        return 0

    @property
    def risk(self) -> RiskLevel:
        return self.default_risk


def one_line(text: str) -> str:
    """Text safe to show as one approval line: control, format and bidi characters escaped.

    A summary is what a human approves. A newline, ANSI escape or right-to-left override inside
    a path or command could otherwise forge extra prompt lines or hide part of the action.
    """
    out: list[str] = []
    for ch in text:
        if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def _absolute_path(value: str) -> str:
    if "\x00" in value:
        raise ValueError("path contains a NUL byte")
    if not value.startswith("/"):
        raise ValueError(f"path must be absolute (resolve it against the workspace): {value!r}")
    if value.startswith("//") or (value != "/" and posixpath.normpath(value) != value):
        # "/ws/../etc/passwd" would match a "file:///ws/**" pattern yet name /etc/passwd.
        raise ValueError(f"path must be normalised (no '.', '..', '//' or trailing '/'): {value!r}")
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]

_NAME = re.compile(r"^[^/\s\x00-\x1f\x7f]{1,128}$")


def _name(value: str) -> str:
    # Server, tool, capsule and function names become URI segments: "a/b" + "c" must not
    # collide with "a" + "b/c" in a capability pattern.
    if not _NAME.fullmatch(value):
        raise ValueError(f"name {value!r} must be 1-128 characters without '/', spaces or controls")
    return value


Name = Annotated[str, AfterValidator(_name)]


class McpToolCall(ActionBase):
    kind: Literal["mcp_tool_call"] = "mcp_tool_call"
    server: Name
    tool: Name
    args: JsonObject = Field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"mcp://{self.server}/{self.tool}"

    @property
    def summary(self) -> str:
        return f"Call MCP tool {self.server}/{self.tool}"

    def arguments(self) -> JsonObject:
        return dict(self.args)


class _PathAction(ActionBase):
    path: AbsolutePath

    @property
    def resource(self) -> str:
        return f"file://{self.path}"

    def arguments(self) -> JsonObject:
        return {"path": self.path}


class FileRead(_PathAction):
    kind: Literal["file_read"] = "file_read"
    default_risk: ClassVar[RiskLevel] = RiskLevel.LOW
    permission: ClassVar[Permission] = Permission.READ

    @property
    def summary(self) -> str:
        return f"Read file: {one_line(self.path)}"


_BLAKE3_HEX = re.compile(r"[0-9a-f]{64}")


class FileWrite(_PathAction):
    """Write (create, replace or edit) a file. The content is part of the action, by size and
    BLAKE3 hash, never the bytes: ``content_bytes`` counts toward the argument size limit, and
    the audit entry of the decision names exactly what was to be written. For ``write_file``
    it is the file's new content; for ``edit_file`` the edit (the RFC 8785 text of
    ``{new_string, old_string, replace_all}``). Both are None for a write with no content
    known when it is decided (a capsule's directory creation)."""

    kind: Literal["file_write"] = "file_write"
    content_bytes: int | None = Field(default=None, ge=0)
    content_blake3: str | None = None

    default_risk: ClassVar[RiskLevel] = RiskLevel.MEDIUM
    permission: ClassVar[Permission] = Permission.WRITE

    @field_validator("content_blake3")
    @classmethod
    def _check_blake3(cls, value: str | None) -> str | None:
        if value is not None and not _BLAKE3_HEX.fullmatch(value):
            raise ValueError("content_blake3 must be 64 lowercase hex digits (a BLAKE3 hash)")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if (self.content_bytes is None) != (self.content_blake3 is None):
            raise ValueError("content_bytes and content_blake3 go together (both or neither)")

    def content_size(self) -> int:
        return self.content_bytes or 0

    @property
    def summary(self) -> str:
        size = "" if self.content_bytes is None else f" ({self.content_bytes:,} bytes)"
        return f"Write file: {one_line(self.path)}{size}"


class FileDelete(_PathAction):
    kind: Literal["file_delete"] = "file_delete"
    default_risk: ClassVar[RiskLevel] = RiskLevel.HIGH
    permission: ClassVar[Permission] = Permission.DELETE

    @property
    def summary(self) -> str:
        return f"Delete file: {one_line(self.path)}"


class DirectoryList(_PathAction):
    kind: Literal["directory_list"] = "directory_list"
    default_risk: ClassVar[RiskLevel] = RiskLevel.LOW
    permission: ClassVar[Permission] = Permission.LIST

    @property
    def summary(self) -> str:
        return f"List directory: {one_line(self.path)}"


class ShellCommand(ActionBase):
    kind: Literal["shell_command"] = "shell_command"
    command: str = Field(min_length=1)
    cwd: AbsolutePath

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("command contains a NUL byte")
        return value

    default_risk: ClassVar[RiskLevel] = RiskLevel.HIGH
    permission: ClassVar[Permission] = Permission.EXECUTE

    @property
    def program(self) -> str:
        """The first word's basename; ``?`` when the line cannot be tokenized.

        This is only the resource name. The approval layer parses the whole line (pipes,
        lists, substitutions, wrappers) before any policy decision.
        """
        try:
            words = shlex.split(self.command, comments=False)
        except ValueError:
            return "?"
        for word in words:
            if "=" in word and not word.startswith("="):
                continue  # leading VAR=value assignments
            return word.rsplit("/", 1)[-1] or "?"
        return "?"

    @property
    def resource(self) -> str:
        return f"cmd://{self.program}"

    @property
    def summary(self) -> str:
        return f"Run command in {one_line(self.cwd)}: {one_line(self.command)}"

    def arguments(self) -> JsonObject:
        return {"command": self.command, "cwd": self.cwd}


class NetworkRequest(ActionBase):
    kind: Literal["network_request"] = "network_request"
    method: str = "GET"
    url: str = Field(min_length=1)

    permission: ClassVar[Permission] = Permission.NETWORK

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{1,16}", value):
            raise ValueError(f"HTTP method {value!r} must be 1-16 letters")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf"} for ch in value):
            raise ValueError(f"URL contains whitespace or control characters: {value!r}")
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https", "ws", "wss", "tcp"} or not parts.hostname:
            raise ValueError(f"unsupported or host-less URL: {value!r}")
        try:
            port = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError as exc:
            raise ValueError(f"URL has an invalid port: {value!r}") from exc
        if parts.scheme == "tcp" and port is None:
            raise ValueError(f"tcp:// URLs need an explicit port: {value!r}")
        return value

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # checked by the validator
        return host.lower()

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        return {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(parts.scheme, 0)

    @property
    def resource(self) -> str:
        return f"net://{self.host}:{self.port}"

    @property
    def summary(self) -> str:
        return f"Network request: {self.method.upper()} {one_line(self.url)}"

    def arguments(self) -> JsonObject:
        return {
            "method": self.method.upper(),
            "url": self.url,
            "host": self.host,
            "port": self.port,
        }


class CapsuleHostCall(ActionBase):
    kind: Literal["capsule_host_call"] = "capsule_host_call"
    capsule: Name
    function: Name
    args: JsonObject = Field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"capsule://{self.capsule}/{self.function}"

    @property
    def summary(self) -> str:
        return f"Capsule {self.capsule} calls host function {self.function}"

    def arguments(self) -> JsonObject:
        return dict(self.args)


class SubAgentSpawn(ActionBase):
    kind: Literal["subagent_spawn"] = "subagent_spawn"
    task: str
    parent_session: SessionId | None = None
    depth: int = Field(default=1, ge=1)

    permission: ClassVar[Permission] = Permission.SPAWN

    @property
    def resource(self) -> str:
        return "agent://subagent"

    @property
    def summary(self) -> str:
        first_line = self.task.strip().splitlines()[0] if self.task.strip() else "(no task)"
        return f"Start a sub-agent (depth {self.depth}): {one_line(first_line[:120])}"

    def arguments(self) -> JsonObject:
        return {"task": self.task, "depth": self.depth}


class LlmCall(ActionBase):
    kind: Literal["llm_call"] = "llm_call"
    model: str = Field(min_length=1)
    # Cost in micro-dollars (integers keep budgets exact and canonical JSON float-free).
    estimated_cost_micros: int = Field(default=0, ge=0)
    purpose: str = "agent turn"

    default_risk: ClassVar[RiskLevel] = RiskLevel.LOW
    permission: ClassVar[Permission] = Permission.SPEND

    @property
    def resource(self) -> str:
        return f"llm://{self.model}"

    @property
    def summary(self) -> str:
        dollars = self.estimated_cost_micros / 1_000_000
        what = f"{one_line(self.model)} ({one_line(self.purpose)})"
        return f"LLM call to {what}, estimated ${dollars:.4f}"

    def arguments(self) -> JsonObject:
        return {"model": self.model, "estimated_cost_micros": self.estimated_cost_micros}


class McpSampling(ActionBase):
    """An MCP server asks to use our model (``sampling/createMessage``): it spends the budget
    on the server's behalf and its answer is untrusted content, so it is an action of its own,
    asked per server, never an agent LLM call."""

    kind: Literal["mcp_sampling"] = "mcp_sampling"
    server: Name
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    estimated_cost_micros: int = Field(default=0, ge=0)

    default_risk: ClassVar[RiskLevel] = RiskLevel.MEDIUM
    permission: ClassVar[Permission] = Permission.SPEND

    @property
    def resource(self) -> str:
        return f"mcp-sampling://{self.server}"

    @property
    def summary(self) -> str:
        dollars = self.estimated_cost_micros / 1_000_000
        return (
            f"MCP server {one_line(self.server)} asks to use {one_line(self.model)} "
            f"(up to {self.max_tokens:,} tokens, estimated ${dollars:.4f})"
        )

    def arguments(self) -> JsonObject:
        return {
            "server": self.server,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "estimated_cost_micros": self.estimated_cost_micros,
        }


class TranscriptAccess(ActionBase):
    kind: Literal["transcript_access"] = "transcript_access"
    session_id: SessionId

    permission: ClassVar[Permission] = Permission.READ

    @property
    def resource(self) -> str:
        return f"transcript://{self.session_id}"

    @property
    def summary(self) -> str:
        return f"Read the transcript of session {self.session_id}"

    def arguments(self) -> JsonObject:
        return {"session_id": str(self.session_id)}


SensitiveAction: TypeAlias = Annotated[
    McpToolCall
    | FileRead
    | FileWrite
    | FileDelete
    | DirectoryList
    | ShellCommand
    | NetworkRequest
    | CapsuleHostCall
    | SubAgentSpawn
    | LlmCall
    | McpSampling
    | TranscriptAccess,
    Field(discriminator="kind"),
]

_ADAPTER: TypeAdapter[SensitiveAction] = TypeAdapter(SensitiveAction)


def action_from_json(data: JsonValue | Any) -> SensitiveAction:
    """Parse a wire/JSON dict into the right action type, or raise BadInputError."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise BadInputError(f"not a valid SensitiveAction: {exc.errors()[0]['msg']}") from exc


def action_to_json(action: SensitiveAction) -> JsonObject:
    dumped: JsonObject = action.model_dump(mode="json")
    return dumped
