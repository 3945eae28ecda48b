"""policy.toml: least privilege an admin can write down, minted into signed capability tokens.

An admin file (``~/.astrid/policy.toml``, applied with ``astrid policy apply FILE``) lists
grants; each becomes one persistent token per resource, signed by the runtime key, whose
``approval_audit_id`` is the audit entry of the ``policy apply`` that minted it::

    version = 1
    strict = false                 # true: nothing is asked, what no grant covers is denied
    on_caveat_mismatch = "deny"    # or "ask": a person sees the refusal and decides

    [[grant]]
    name = "mail to the team"
    mcp = "mail/send"              # or files / commands / host / capsule / resource
    permissions = ["invoke"]       # default: what the resource kind needs
    caveats = [
      { each_in = "recipients", values = ["alice@example.com", "bob@example.com"] },
      { only_args = ["recipients", "subject", "body"] },
    ]
    ttl = "30d"                    # s / m / h / d; default: no expiry
    max_calls = 20

    [[label]]                      # information flow: what taints, what is a sink
    resource = "mcp://mail/send"
    sink = true

A workspace file (``<workspace>/.astrid/policy.toml``) may only add restrictions: ``strict =
true``, ``on_caveat_mismatch = "deny"`` and labels that make a tool a source or a sink. Grants
there are refused with the fix. Every error names the file, the line and the fix.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from astrid_capabilities import (
    Absent,
    ArgEquals,
    ArgIn,
    ArgMatches,
    CapabilityToken,
    Caveat,
    EachIn,
    MaxCalls,
    NotAfter,
    OnlyArgs,
    Range,
    ResourcePattern,
    caveat_refusal,
)
from astrid_capabilities._caveats import caveat_from_json
from astrid_core import AuditEntryId, BadInputError, ConfigError, JsonObject, JsonValue, Permission
from astrid_crypto import KeyPair, content_hash

from ._allowances import shell_scope_resource

__all__ = [
    "PolicySettings",
    "PolicyLabel",
    "PolicyGrant",
    "PolicyFile",
    "parse_policy",
    "POLICY_VERSION",
]

POLICY_VERSION: Final = 1
MismatchMode = Literal["deny", "ask"]
_RESOURCE_KEYS: Final = ("mcp", "files", "commands", "host", "capsule", "resource")
_GRANT_KEYS: Final = frozenset(
    {*_RESOURCE_KEYS, "name", "permissions", "caveats", "ttl", "max_calls", "scope"}
)
_CAVEAT_KINDS: Final = (
    "arg_equals",
    "arg_in",
    "arg_matches",
    "each_in",
    "range",
    "absent",
    "only_args",
    "not_after",
)
_DEFAULT_PERMISSIONS: Final[dict[str, tuple[Permission, ...]]] = {
    "mcp": (Permission.INVOKE,),
    "files": (Permission.READ,),
    "commands": (Permission.EXECUTE,),
    "host": (Permission.NETWORK,),
    "capsule": (Permission.INVOKE,),
}
_TTL: Final = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME: Final = re.compile(r"^[^\s/][^/\x00-\x1f]{0,127}$")


@dataclass(frozen=True, slots=True)
class PolicyLabel:
    """How information flow sees the tools a pattern matches (None: as their kind says)."""

    pattern: ResourcePattern
    source: bool | None = None  # its results taint the session
    sink: bool | None = None  # it can exfiltrate or act outside: asked once tainted

    def to_json(self) -> JsonObject:
        data: JsonObject = {"resource": self.pattern.pattern}
        if self.source is not None:
            data["source"] = self.source
        if self.sink is not None:
            data["sink"] = self.sink
        return data


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """What the interceptor takes from the applied policy (and a workspace's restrictions)."""

    strict: bool = False
    on_caveat_mismatch: MismatchMode = "deny"
    labels: tuple[PolicyLabel, ...] = ()

    def label_for(self, resource: str) -> tuple[bool | None, bool | None]:
        """(source, sink) overrides for ``resource``: the most specific matching label wins;
        a workspace label only ever turns one on (see ``tightened``)."""
        source: bool | None = None
        sink: bool | None = None
        for label in sorted(self.labels, key=lambda lb: len(lb.pattern.literal_prefix)):
            if label.pattern.matches(resource):
                source = label.source if label.source is not None else source
                sink = label.sink if label.sink is not None else sink
        return source, sink

    def tightened(self, workspace: PolicySettings) -> PolicySettings:
        """These settings with a workspace's restrictions added (never loosened)."""
        extra = tuple(
            PolicyLabel(label.pattern, label.source or None, label.sink or None)
            for label in workspace.labels
        )
        return PolicySettings(
            strict=self.strict or workspace.strict,
            on_caveat_mismatch="deny"
            if "deny" in (self.on_caveat_mismatch, workspace.on_caveat_mismatch)
            else "ask",
            labels=self.labels + extra,
        )

    def to_json(self) -> JsonObject:
        return {
            "strict": self.strict,
            "on_caveat_mismatch": self.on_caveat_mismatch,
            "labels": [label.to_json() for label in self.labels],
        }

    @classmethod
    def from_json(cls, data: object) -> PolicySettings:
        if not isinstance(data, dict):
            raise BadInputError("stored policy settings are not an object")
        obj = cast(dict[str, Any], data)
        labels = tuple(
            PolicyLabel(ResourcePattern(lb["resource"]), lb.get("source"), lb.get("sink"))
            for lb in cast(list[dict[str, Any]], obj.get("labels", []))
        )
        mismatch = obj.get("on_caveat_mismatch", "deny")
        return cls(
            strict=bool(obj.get("strict", False)),
            on_caveat_mismatch="ask" if mismatch == "ask" else "deny",
            labels=labels,
        )


@dataclass(frozen=True, slots=True)
class PolicyGrant:
    name: str
    line: int
    kind: str  # which resource key: mcp, files, commands, host, capsule, resource
    resources: tuple[ResourcePattern, ...]
    permissions: tuple[Permission, ...]
    caveats: tuple[Caveat, ...]
    ttl_seconds: int | None
    max_calls: int | None
    shown: tuple[str, ...]  # the resources as written (a command line, a host)

    @property
    def all_caveats(self) -> tuple[Caveat, ...]:
        return self.caveats + ((MaxCalls(self.max_calls),) if self.max_calls else ())

    def describe(self) -> list[str]:
        """What this grant allows, in words, with an allowed and a refused example per caveat."""
        perms = ", ".join(p.value for p in self.permissions)
        lines = [f"grant {self.name!r} (line {self.line}): {perms} on"]
        lines += [
            f"  {shown}  ->  {r.pattern}"
            for shown, r in zip(self.shown, self.resources, strict=True)
        ]
        if self.ttl_seconds:
            lines.append(f"  expires {self.ttl_seconds} s after `astrid policy apply`")
        if self.max_calls:
            lines.append(f"  at most {self.max_calls} call(s) in all")
        if not self.caveats:
            lines.append("  any arguments")
            return lines
        lines.append("  only when: " + "; ".join(_caveat_words(c) for c in self.caveats))
        allowed = _example_arguments(self.caveats)
        lines.append(f"  e.g. allowed: {json.dumps(allowed, sort_keys=True)}")
        for caveat in self.caveats:
            bad = _refused_example(caveat, allowed)
            if bad is None:
                continue
            refusal = next(
                (r for c in self.caveats if (r := caveat_refusal(c, bad, 0)) is not None), None
            )
            if refusal is not None:
                why = f"{refusal.kind}: {refusal.reason}"
                lines.append(f"  e.g. refused: {json.dumps(bad, sort_keys=True)}  ({why})")
        return lines

    def mint(
        self, key: KeyPair, approval_audit_id: AuditEntryId, now: int | None = None
    ) -> list[CapabilityToken]:
        return [
            CapabilityToken.issue(
                key,
                resource,
                self.permissions,
                scope="persistent",
                ttl_seconds=self.ttl_seconds,
                approval_audit_id=approval_audit_id,
                caveats=self.all_caveats,
                now=now,
            )
            for resource in self.resources
        ]


@dataclass(frozen=True, slots=True)
class PolicyFile:
    settings: PolicySettings
    grants: tuple[PolicyGrant, ...]
    source: str = field(repr=False)
    path: str = "policy.toml"

    @property
    def digest(self) -> str:
        return content_hash(self.source.encode()).hex

    def describe(self) -> list[str]:
        mode = (
            "strict: what no grant covers is denied, nothing is asked"
            if (self.settings.strict)
            else "not strict: what no grant covers follows the workspace mode"
        )
        lines = [
            f"{self.path}: {len(self.grants)} grant(s), {len(self.settings.labels)} label(s)",
            f"  {mode}",
            f"  a caveat refusal is {_refusal_word(self.settings.on_caveat_mismatch)}",
        ]
        for grant in self.grants:
            lines += grant.describe()
        for label in self.settings.labels:
            what = ", ".join(
                f"{name} = {str(value).lower()}"
                for name, value in (("source", label.source), ("sink", label.sink))
                if value is not None
            )
            lines.append(f"label {label.pattern.pattern}: {what}")
        return lines

    def mint(
        self, key: KeyPair, approval_audit_id: AuditEntryId, now: int | None = None
    ) -> list[CapabilityToken]:
        return [t for grant in self.grants for t in grant.mint(key, approval_audit_id, now)]


def _refusal_word(mode: MismatchMode) -> str:
    return "asked of a person" if mode == "ask" else "denied with the caveat's reason"


# ---------------------------------------------------------------------- parsing


class _Where:
    """Line numbers for the keys of the Nth ``[[grant]]`` / ``[[label]]`` table."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.tables: dict[str, list[int]] = {"grant": [], "label": []}
        for number, line in enumerate(self.lines, 1):
            match = re.match(r"^\s*\[\[\s*(grant|label)\s*\]\]", line)
            if match:
                self.tables[match.group(1)].append(number)

    def line(self, table: str, index: int, key: str | None = None) -> int:
        starts = self.tables[table]
        if index >= len(starts):
            return 1
        start = starts[index]
        if key is None:
            return start
        for number in range(start + 1, len(self.lines) + 1):
            text = self.lines[number - 1]
            if re.match(r"^\s*\[", text):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", text):
                return number
        return start

    def error(self, line: int, message: str, hint: str) -> ConfigError:
        return ConfigError(f"{self.path} line {line}: {message}", hint=hint)


def parse_policy(
    text: str, path: str = "policy.toml", *, layer: Literal["admin", "workspace"] = "admin"
) -> PolicyFile:
    """Parse and validate a policy file, or raise ConfigError naming the line and the fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint="fix the syntax at the line named"
        ) from exc
    where = _Where(text, path)
    unknown = set(data) - {"version", "strict", "on_caveat_mismatch", "grant", "label"}
    if unknown:
        raise where.error(
            1,
            f"unknown top-level key(s) {sorted(unknown)}",
            "the keys are version, strict, on_caveat_mismatch, [[grant]] and [[label]]",
        )
    version = data.get("version", POLICY_VERSION)
    if version != POLICY_VERSION:
        raise where.error(1, f"version {version!r} is not supported", "write version = 1")
    strict = data.get("strict", False)
    if not isinstance(strict, bool):
        raise where.error(1, f"strict = {strict!r} is not true or false", "strict = true")
    mismatch = data.get("on_caveat_mismatch", "deny")
    if mismatch not in ("deny", "ask"):
        raise where.error(
            1, f"on_caveat_mismatch = {mismatch!r}", 'write on_caveat_mismatch = "deny" or "ask"'
        )
    raw_grants = _tables(data, "grant", where)
    if layer == "workspace":
        if raw_grants:
            raise where.error(
                where.line("grant", 0),
                "a workspace policy may only add restrictions; it cannot grant",
                "move the [[grant]] to the admin policy (~/.astrid/policy.toml) and run "
                "`astrid policy apply ~/.astrid/policy.toml`",
            )
        if mismatch == "ask":
            raise where.error(
                1,
                'on_caveat_mismatch = "ask" would loosen the admin policy',
                'a workspace may only write on_caveat_mismatch = "deny"',
            )
        if strict is False and "strict" in data:
            raise where.error(1, "strict = false would loosen the admin policy", "remove the line")
    grants = tuple(_grant(raw, i, where) for i, raw in enumerate(raw_grants))
    names = [g.name for g in grants]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise where.error(
                grants[i].line, f"grant name {name!r} is used twice", "give each grant its own name"
            )
    labels = tuple(
        _label(raw, i, where, layer) for i, raw in enumerate(_tables(data, "label", where))
    )
    settings = PolicySettings(strict, mismatch, labels)
    return PolicyFile(settings, grants, text, path)


def _tables(data: Mapping[str, Any], name: str, where: _Where) -> list[dict[str, Any]]:
    raw = data.get(name, [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in cast(list[Any], raw)):
        raise where.error(1, f"{name} must be an array of tables", f"write [[{name}]] sections")
    return cast(list[dict[str, Any]], raw)


def _grant(raw: Mapping[str, Any], index: int, where: _Where) -> PolicyGrant:
    line = where.line("grant", index)
    unknown = set(raw) - _GRANT_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(
            where.line("grant", index, key),
            f"unknown key {key!r} in [[grant]]",
            f"a grant has {', '.join(sorted(_GRANT_KEYS))}",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error(line, "a [[grant]] needs a name", 'add name = "what this grant is for"')
    given = [k for k in _RESOURCE_KEYS if k in raw]
    if len(given) != 1:
        raise where.error(
            line,
            f"grant {name!r} names {len(given)} resource keys {given}",
            f"give exactly one of {', '.join(_RESOURCE_KEYS)}",
        )
    kind = given[0]
    key_line = where.line("grant", index, kind)
    shown, resources = _resources(kind, raw[kind], key_line, where)
    if raw.get("scope", "persistent") != "persistent":
        raise where.error(
            where.line("grant", index, "scope"),
            f"scope {raw.get('scope')!r} is not supported for a policy grant",
            'policy grants are scope = "persistent" (every session); narrow with caveats',
        )
    permissions = _permissions(raw, kind, index, where)
    caveats = tuple(
        _caveat(c, where.line("grant", index, "caveats"), where)
        for c in _list(
            raw.get("caveats", []), "caveats", where.line("grant", index, "caveats"), where
        )
    )
    ttl = _ttl(raw.get("ttl"), where.line("grant", index, "ttl"), where)
    max_calls = raw.get("max_calls")
    if max_calls is not None and (
        isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1
    ):
        raise where.error(
            where.line("grant", index, "max_calls"),
            f"max_calls = {max_calls!r} is not a positive integer",
            "max_calls = 10",
        )
    return PolicyGrant(
        name=name,
        line=line,
        kind=kind,
        resources=resources,
        permissions=permissions,
        caveats=caveats,
        ttl_seconds=ttl,
        max_calls=max_calls,
        shown=shown,
    )


def _list(value: object, what: str, line: int, where: _Where) -> list[Any]:
    if not isinstance(value, list):
        raise where.error(line, f"{what} must be a list", f"write {what} = [ ... ]")
    return cast(list[Any], value)


def _resources(
    kind: str, value: object, line: int, where: _Where
) -> tuple[tuple[str, ...], tuple[ResourcePattern, ...]]:
    items = cast(list[object], value) if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise where.error(line, f"{kind} must be a string or a list of strings", _example(kind))
    shown = tuple(cast(list[str], items))
    try:
        return shown, tuple(_pattern(kind, item) for item in shown)
    except BadInputError as exc:
        raise where.error(line, exc.message, exc.hint or _example(kind)) from exc


def _example(kind: str) -> str:
    return {
        "mcp": 'mcp = "server/tool" (or "server/*")',
        "files": 'files = "/home/me/notes/**"',
        "commands": 'commands = ["git status", "git diff"]',
        "host": 'host = "api.github.com" (port 443) or "example.com:8080"',
        "capsule": 'capsule = "capsule-name/function"',
        "resource": 'resource = "mcp://server/tool" (a capability pattern)',
    }[kind]


def _pattern(kind: str, item: str) -> ResourcePattern:
    if kind == "mcp":
        if item.startswith("mcp://"):
            item = item[len("mcp://") :]
        return ResourcePattern(f"mcp://{_server_tool(item)}")
    if kind == "capsule":
        return ResourcePattern(f"capsule://{_server_tool(item, 'capsule/function')}")
    if kind == "files":
        if not item.startswith("/"):
            raise BadInputError(
                f"files = {item!r} is not an absolute path glob", hint='files = "/srv/data/**"'
            )
        return ResourcePattern(f"file://{item}")
    if kind == "commands":
        from astrid_core import ShellCommand

        return ResourcePattern.literal(shell_scope_resource(ShellCommand(command=item, cwd="/")))
    if kind == "host":
        host, _, port = item.partition(":")
        if not host or "/" in item or (port and not port.isdigit()):
            raise BadInputError(
                f"host = {item!r} is not a host or host:port", hint=_example("host")
            )
        return ResourcePattern(f"net://{host.lower()}:{port or 443}")
    return ResourcePattern(item)


def _server_tool(item: str, spelling: str = "server/tool") -> str:
    if "/" not in item:
        fixed = item.replace(":", "/", 1) if ":" in item else f"{item}/*"
        raise BadInputError(
            f"{item!r} does not name a {spelling}",
            hint=f'write "{fixed}" (the form is {spelling}; "server:tool" is not a pattern)',
        )
    return item


def _permissions(
    raw: Mapping[str, Any], kind: str, index: int, where: _Where
) -> tuple[Permission, ...]:
    if "permissions" not in raw:
        default = _DEFAULT_PERMISSIONS.get(kind)
        if default is None:
            raise where.error(
                where.line("grant", index),
                "a grant with resource = ... needs permissions",
                'add permissions = ["invoke"] (or read, write, list, execute, network, ...)',
            )
        return default
    line = where.line("grant", index, "permissions")
    values = _list(raw["permissions"], "permissions", line, where)
    try:
        found = tuple(sorted({Permission(v) for v in values}, key=lambda p: p.value))
    except ValueError as exc:
        raise where.error(
            line,
            f"unknown permission in {values!r}",
            f"use {', '.join(p.value for p in Permission)}",
        ) from exc
    if not found:
        raise where.error(line, "permissions is empty", 'permissions = ["invoke"]')
    return found


def _ttl(value: object, line: int, where: _Where) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _TTL.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise where.error(line, f"ttl = {value!r} is not a duration", 'ttl = "12h" (s, m, h, d)')
    return int(match.group(1)) * _UNITS[match.group(2)]


def _caveat(raw: object, line: int, where: _Where) -> Caveat:
    hint = (
        'a caveat is an inline table naming its kind, e.g. { each_in = "recipients", '
        'values = ["a@example.com"] }, { range = "amount", lo = 0, hi = 100 }, '
        '{ absent = "bcc" }, { only_args = ["to", "body"] }'
    )
    if not isinstance(raw, dict):
        raise where.error(line, f"caveat {raw!r} is not a table", hint)
    obj = cast(dict[str, Any], raw)
    kinds = [k for k in _CAVEAT_KINDS if k in obj]
    if len(kinds) != 1:
        raise where.error(line, f"caveat {obj!r} names {len(kinds)} kinds", hint)
    kind = kinds[0]
    wire: dict[str, Any] = {"type": kind}
    rest = {k: v for k, v in obj.items() if k != kind}
    if kind == "only_args":
        wire["args"] = obj[kind]
    elif kind == "not_after":
        wire["timestamp"] = obj[kind]
    else:
        wire["arg"] = obj[kind]
    wire.update(rest)
    try:
        caveat = caveat_from_json(wire)
    except BadInputError as exc:
        raise where.error(line, f"caveat {kind}: {exc.message}", exc.hint or hint) from exc
    return caveat


def _label(
    raw: Mapping[str, Any], index: int, where: _Where, layer: Literal["admin", "workspace"]
) -> PolicyLabel:
    line = where.line("label", index)
    unknown = set(raw) - {"resource", "source", "sink"}
    resource = raw.get("resource")
    if unknown or not isinstance(resource, str):
        raise where.error(
            line,
            f"a [[label]] has resource, source and sink (got {sorted(raw)})",
            'resource = "mcp://mail/send"\nsink = true',
        )
    values: dict[str, bool | None] = {}
    for name in ("source", "sink"):
        value = raw.get(name)
        if value is not None and not isinstance(value, bool):
            raise where.error(
                where.line("label", index, name), f"{name} must be true or false", f"{name} = true"
            )
        if value is False and layer == "workspace":
            raise where.error(
                where.line("label", index, name),
                f"{name} = false would loosen the admin policy",
                "a workspace label may only say source = true or sink = true",
            )
        values[name] = value
    try:
        pattern = ResourcePattern(resource)
    except BadInputError as exc:
        raise where.error(line, exc.message, exc.hint or 'resource = "mcp://server/*"') from exc
    return PolicyLabel(pattern, values["source"], values["sink"])


# ---------------------------------------------------------------------- examples for `check`


def _caveat_words(caveat: Caveat) -> str:
    if isinstance(caveat, ArgEquals):
        return f"`{caveat.arg}` is {json.dumps(caveat.value)}"
    if isinstance(caveat, ArgIn):
        return f"`{caveat.arg}` is one of {json.dumps(list(caveat.values))}"
    if isinstance(caveat, EachIn):
        return f"every element of `{caveat.arg}` is in {json.dumps(list(caveat.values))}"
    if isinstance(caveat, ArgMatches):
        return f"`{caveat.arg}` matches {caveat.glob!r}"
    if isinstance(caveat, Range):
        lo = "-inf" if caveat.lo is None else caveat.lo
        hi = "+inf" if caveat.hi is None else caveat.hi
        return f"`{caveat.arg}` is a number in [{lo}, {hi}]"
    if isinstance(caveat, Absent):
        return f"`{caveat.arg}` is not given"
    if isinstance(caveat, OnlyArgs):
        return f"no argument besides {', '.join(caveat.args) or '(none)'}"
    if isinstance(caveat, NotAfter):
        return f"before unix time {caveat.timestamp}"
    return f"at most {caveat.limit} calls"


def _allowed_value(caveat: Caveat) -> tuple[bool, JsonValue]:
    if isinstance(caveat, ArgEquals):
        return True, caveat.value
    if isinstance(caveat, ArgIn):
        return True, caveat.values[0]
    if isinstance(caveat, EachIn):
        return True, [caveat.values[0]]
    if isinstance(caveat, ArgMatches):
        return True, caveat.glob.replace("*", "x").replace("?", "x")
    if isinstance(caveat, Range):
        return True, caveat.lo if caveat.lo is not None else caveat.hi
    return False, None


def _set(arguments: JsonObject, arg: str, value: JsonValue) -> None:
    if not arg.startswith("/"):
        arguments[arg] = value
        return
    parts = [p.replace("~1", "/").replace("~0", "~") for p in arg[1:].split("/")]
    node: JsonObject = arguments
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _example_arguments(caveats: Iterable[Caveat]) -> JsonObject:
    arguments: JsonObject = {}
    for caveat in caveats:
        has, value = _allowed_value(caveat)
        if has and not isinstance(caveat, Absent | OnlyArgs | MaxCalls | NotAfter):
            _set(arguments, caveat.arg, value)
    return arguments


def _refused_example(caveat: Caveat, allowed: JsonObject) -> JsonObject | None:
    bad: JsonObject = json.loads(json.dumps(allowed))
    if isinstance(caveat, EachIn):
        _set(bad, caveat.arg, [caveat.values[0], "someone-else@evil.test"])
    elif isinstance(caveat, ArgIn | ArgEquals):
        _set(bad, caveat.arg, "something-else")
    elif isinstance(caveat, ArgMatches):
        _set(bad, caveat.arg, "evil.test")
    elif isinstance(caveat, Range):
        _set(
            bad,
            caveat.arg,
            (caveat.hi + 1) if caveat.hi is not None else (cast(float, caveat.lo) - 1),
        )
    elif isinstance(caveat, Absent):
        _set(bad, caveat.arg, "injected")
    elif isinstance(caveat, OnlyArgs):
        bad["unexpected"] = "injected"
    else:
        return None
    return bad


def grants_to_json(grants: Sequence[PolicyGrant]) -> list[JsonValue]:
    return [
        {"name": g.name, "line": g.line, "resources": [r.pattern for r in g.resources]}
        for g in grants
    ]
