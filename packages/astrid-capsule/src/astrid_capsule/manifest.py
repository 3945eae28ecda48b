"""``Capsule.toml``: the typed, strict manifest of a capsule.

Unknown keys are errors (a typo in a permission must not silently drop it), and every error
names the file, the line and the key path, e.g.::

    Capsule.toml:14: [capabilities] fs_raed: unknown key (did you mean 'fs_read'?)
"""

from __future__ import annotations

import difflib
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails

from .errors import ManifestError

__all__ = [
    "CapsuleManifest",
    "PackageInfo",
    "Component",
    "Capabilities",
    "EnvVar",
    "McpServerSpec",
    "ToolSpec",
    "SkillSpec",
    "CronSpec",
    "ContextSpec",
    "CommandSpec",
    "InterceptorSpec",
    "LlmProviderSpec",
    "ManifestError",
    "load_manifest",
    "parse_manifest",
    "MANIFEST_NAME",
    "CONVENTIONAL_EXPORTS",
]

MANIFEST_NAME = "Capsule.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _relative_path(value: str) -> str:
    if not value or value.startswith("/") or "\x00" in value or ".." in Path(value).parts:
        raise ValueError(f"must be a relative path inside the capsule, got {value!r}")
    return value


class PackageInfo(_Strict):
    name: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 chars of a-z, 0-9, '-' or '_', starting alphanumeric")
        return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]


class Component(_Strict):
    entrypoint: RelativePath
    hash: str | None = None  # BLAKE3 hex of the .wasm; required outside dev mode
    wasi: bool = False

    @field_validator("hash")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("must be 64 lowercase hex characters (BLAKE3)")
        return value


class Capabilities(_Strict):
    net: tuple[str, ...] = ()
    fs_read: tuple[str, ...] = ()
    fs_write: tuple[str, ...] = ()
    kv: bool = False
    config: tuple[str, ...] = ()

    @field_validator("net")
    @classmethod
    def _check_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+", host) or host in ("*", "*."):
                raise ValueError(f"{host!r} is not a host name (wildcards only as '*.domain')")
        return hosts

    @field_validator("fs_read", "fs_write")
    @classmethod
    def _check_paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            body = path.removeprefix("!")
            if ".." in body.split("/") or "\x00" in body or body.startswith("~"):
                raise ValueError(
                    f"{path!r}: a capsule path is workspace-relative, or absolute (an exact file "
                    "or a glob outside the workspace), never with '..' or '~'"
                )
            if body.startswith("/") and (path.startswith("!") or body.rstrip("/") == ""):
                raise ValueError(
                    f"{path!r}: an absolute entry names files, not '/' or an exclusion"
                )
        return paths

    def outside_workspace(self) -> list[str]:
        """The absolute entries (files or globs outside the workspace), as ``kind: path``."""
        return [
            f"{kind}: {path}"
            for kind in ("fs_read", "fs_write")
            for path in getattr(self, kind)
            if path.startswith("/")
        ]

    def widened_by(self, other: Capabilities) -> list[str]:
        """What ``other`` grants that this does not (for the update permission diff)."""
        added: list[str] = []
        for name in ("net", "fs_read", "fs_write", "config"):
            mine: tuple[str, ...] = getattr(self, name)
            added += [f"{name}: {item}" for item in getattr(other, name) if item not in mine]
        if other.kv and not self.kv:
            added.append("kv: true")
        return added


class EnvVar(_Strict):
    description: str = ""
    request: str = ""  # the prompt shown when eliciting the value at install
    secret: bool = False
    type: Literal["string", "secret"] = "string"
    default: str | None = None

    @property
    def is_secret(self) -> bool:
        return self.secret or self.type == "secret"


class McpServerSpec(_Strict):
    id: str
    type: Literal["stdio", "http"] = "stdio"
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class ToolSpec(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    export: str  # WASM export implementing the tool
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class SkillSpec(_Strict):
    name: str
    description: str = ""
    file: RelativePath | None = None
    content: str | None = None


class ContextSpec(_Strict):
    """A file of the capsule given to the model as untrusted reference text (size-capped)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    file: RelativePath
    description: str = ""


class CommandSpec(_Strict):
    """A slash command (``/name args``) that expands into a prompt, and does nothing else.

    ``template`` is the prompt; ``{args}`` is replaced by everything after the name and
    ``{1}`` .. ``{9}`` by its whitespace-separated words (a missing one is an error)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    description: str = ""
    template: str = Field(min_length=1, max_length=8000)


class CronSpec(_Strict):
    """A scheduled run of one of the capsule's own tools.

    ``action`` is the ``name`` of a ``[[tool]]`` of the same capsule, or a dotted name
    (``astrid.github.sync``) whose last segment names that tool or, when no ``[[tool]]`` has
    that name, the component's export of that name (checked when the manifest is loaded and
    again when the component is). Whenever ``schedule`` matches, the runtime calls that tool
    with no arguments (``{}``) in a headless session of the capsule's own on
    ``[workspace] root``, authorized and confined exactly as when the agent calls it.
    ``schedule`` is a 5-field cron expression (minute hour day-of-month month day-of-week,
    e.g. ``"0 * * * *"``) in the daemon's local time. See the package README for what happens
    at a run.
    """

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schedule: str
    action: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}(\.[a-zA-Z0-9_-]{1,64}){0,7}$")

    @property
    def target(self) -> str:
        """The tool or export the action names: the last segment of a dotted name."""
        return self.action.rsplit(".", 1)[-1]

    @property
    def dotted(self) -> bool:
        return "." in self.action

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str, info: ValidationInfo) -> str:
        job = f"cron job {info.data['name']!r}" if "name" in info.data else "cron job"
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"{job}: schedule {value!r} has {len(fields)} fields; a schedule has 5: minute "
                'hour day-of-month month day-of-week, e.g. "0 * * * *" (every hour)'
            )
        try:
            # Any date works for checking the fields; next() proves the schedule can match.
            next(CronSim(value, datetime(2000, 1, 1)))
        except (CronSimError, StopIteration) as exc:
            problem = str(exc) or "it never matches a date"
            raise ValueError(
                f"{job}: schedule {value!r} is not a valid cron expression: {problem}"
            ) from None
        return value


# The component export an [[interceptor]] without ``export`` is delivered to.
CONVENTIONAL_EXPORTS = {
    "BeforeToolCall": "before_tool_call",
    "AfterToolCall": "after_tool_call",
    "UserPrompt": "user_prompt",
    "SessionStart": "session_start",
    "SessionEnd": "session_end",
}


class InterceptorSpec(_Strict):
    event: Literal["BeforeToolCall", "AfterToolCall", "UserPrompt", "SessionStart", "SessionEnd"]
    export: str | None = None

    @property
    def handler(self) -> str:
        """The export that handles the event: ``export``, else the conventional one
        (``BeforeToolCall`` -> ``before_tool_call``)."""
        return self.export or CONVENTIONAL_EXPORTS[self.event]


class LlmProviderSpec(_Strict):
    id: str
    description: str = ""
    capabilities: tuple[str, ...] = ()


class CapsuleManifest(_Strict):
    package: PackageInfo
    component: Component | None = None
    capabilities: Capabilities = Capabilities()
    config: dict[str, str] = Field(default_factory=dict)
    env: dict[str, EnvVar] = Field(default_factory=dict)
    mcp_server: tuple[McpServerSpec, ...] = ()
    tool: tuple[ToolSpec, ...] = ()
    skill: tuple[SkillSpec, ...] = ()
    context: tuple[ContextSpec, ...] = ()
    command: tuple[CommandSpec, ...] = ()
    cron: tuple[CronSpec, ...] = ()
    interceptor: tuple[InterceptorSpec, ...] = ()
    llm_provider: tuple[LlmProviderSpec, ...] = ()

    @field_validator("cron")
    @classmethod
    def _check_cron_actions(
        cls, cron: tuple[CronSpec, ...], info: ValidationInfo
    ) -> tuple[CronSpec, ...]:
        tools: tuple[ToolSpec, ...] | None = info.data.get("tool")
        names = [t.name for t in tools] if tools is not None else None
        errors: list[InitErrorDetails] = []
        seen: set[str] = set()
        for index, job in enumerate(cron):
            if job.name in seen:
                problem = f"cron job {job.name!r} is defined twice; each needs its own name"
                errors.append(_value_error((index, "name"), job.name, problem))
            seen.add(job.name)
            if job.dotted and (job.target in (names or ()) or info.data.get("component")):
                continue  # a tool by its dotted name, or the component's export of that name
            if job.dotted and names is not None:
                problem = (
                    f"cron job {job.name!r}: action {job.action!r} names neither a [[tool]] "
                    f"{job.target!r} nor an export of a [component] (the capsule has none)"
                )
                errors.append(_value_error((index, "action"), job.action, problem))
                continue
            if names is not None and job.action not in names:  # None: [[tool]] is invalid
                guess = difflib.get_close_matches(job.action, names, n=1)
                problem = (
                    f"cron job {job.name!r}: action {job.action!r} is not a [[tool]] of this "
                    "capsule"
                    + (f" (did you mean {guess[0]!r}?)" if guess else "")
                    + (f"; its tools: {', '.join(names)}" if names else "; it has no [[tool]]")
                )
                errors.append(_value_error((index, "action"), job.action, problem))
        if errors:
            # Raised as a ValidationError so each problem keeps its own location (line).
            raise ValidationError.from_exception_data("CapsuleManifest", errors)
        return cron

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def secrets(self) -> list[str]:
        return [name for name, var in self.env.items() if var.is_secret]


def _value_error(loc: tuple[int | str, ...], value: str, problem: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": value, "ctx": {"error": problem}}


# ---------------------------------------------------------------------- parsing


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of a key path in TOML text (1-based), for error messages."""
    lines = text.splitlines()
    if not loc:
        return None
    table = str(loc[0])
    rest = list(loc[1:])
    start = 0
    headers = [
        i
        for i, line in enumerate(lines)
        if re.match(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?", line)
    ]
    if headers:
        first = rest[0] if rest else None
        index = 0
        if isinstance(first, int):
            index = first
            rest.pop(0)
        start = headers[min(index, len(headers) - 1)]
        if not rest:
            return start + 1
    for i in range(start + (1 if headers else 0), len(lines)):
        if headers and i > start and re.match(r"^\s*\[", lines[i]):
            break
        key = str(rest[0]) if rest else table
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]) or re.match(
            rf"^\s*\[\s*{re.escape(table)}\.{re.escape(key)}\s*\]", lines[i]
        ):
            return i + 1
    return start + 1 if headers else None


def _describe(error: dict[str, Any], text: str, source: str, known: dict[str, list[str]]) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    line = _line_of(text, loc)
    where = f"{source}:{line}" if line else source
    dotted = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        parent = ".".join(str(p) for p in loc[:-1] if not isinstance(p, int))
        candidates = known.get(parent, [])
        guess = difflib.get_close_matches(str(loc[-1]), candidates, n=1)
        suffix = f" (did you mean {guess[0]!r}?)" if guess else ""
        return f"{where}: {dotted}: unknown key{suffix}"
    return f"{where}: {dotted}: {error['msg']}"


def _known_keys() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {"": list(CapsuleManifest.model_fields)}
    for name, field in CapsuleManifest.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys[name] = list(candidate.model_fields)
    return keys


def parse_manifest(text: str, source: str = MANIFEST_NAME) -> CapsuleManifest:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError([f"{source}: invalid TOML: {exc}"]) from exc
    try:
        return CapsuleManifest.model_validate(data)
    except ValidationError as exc:
        known = _known_keys()
        raise ManifestError(
            [_describe(dict(e), text, source, known) for e in exc.errors()]
        ) from exc


def load_manifest(capsule_dir: Path) -> CapsuleManifest:
    path = capsule_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError([f"{path}: no {MANIFEST_NAME} in {capsule_dir}"]) from exc
    except UnicodeDecodeError as exc:
        raise ManifestError([f"{path}: not UTF-8 text"]) from exc
    return parse_manifest(text, str(path))
