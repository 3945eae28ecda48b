"""Layered loading: defaults → /etc/astrid → $ASTRID_HOME → <workspace>/.astrid, then env.

The workspace layer is a file inside a repository that someone else may have written, so it
may only *tighten*: each key declares its rule (``_models.workspace_rule``) and a value that
breaks it is refused with the file, the key, the value it tried and the limit it hit. Servers a
workspace adds are untrusted, sandboxed, started by hand and confined to the workspace.
Environment variables fill values that are still unset (fallbacks, not overrides), matched to
the provider so one vendor's key never goes to another. Every value remembers where it came
from (``provenance``), and every problem in every file is reported at once.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from astrid_core import ConfigError

from ._models import (
    SECRET_KEYS,
    SECTIONS,
    AstridConfig,
    ServerConfig,
    section_model,
    server_key_is_admin_only,
)
from ._models import workspace_rule as _rule

__all__ = ["LoadedConfig", "load_config", "config_paths", "ConfigProblems", "SYSTEM_CONFIG"]

SYSTEM_CONFIG = Path("/etc/astrid/config.toml")
MASK = "********"

_DEFAULTS = AstridConfig().model_dump(mode="python")

# Environment fallbacks for keys no file set. Provider first: it decides which vendor's
# variables may fill the key and endpoint (an OpenAI key must never reach Anthropic).
_PLAIN_ENV: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "provider"): ("ASTRID_PROVIDER",),
    ("model", "model"): ("ASTRID_MODEL",),
    ("telegram", "bot_token"): ("TELEGRAM_BOT_TOKEN",),
}
OPENAI_DEFAULT_MODEL = "gpt-4.1-mini"
_PROVIDER_ENV: dict[str, dict[str, tuple[str, ...]]] = {
    "api_key": {
        "anthropic": ("ASTRID_API_KEY", "ANTHROPIC_API_KEY"),
        "openai": ("ASTRID_API_KEY", "OPENAI_API_KEY"),
    },
    "base_url": {
        "anthropic": ("ASTRID_BASE_URL", "ANTHROPIC_BASE_URL"),
        "openai": ("ASTRID_BASE_URL", "OPENAI_BASE_URL"),
    },
}

# Variables that make the dynamic loader or the Python launcher load files they name. The
# sandbox launcher starts with the server's env and only then confines itself, so from a
# workspace these would run repository code on the host, outside the sandbox.
_LOADER_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHON")
_LOADER_ENV_NAMES = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
    }
)


class ConfigProblems(ConfigError):
    """One or more configuration problems; ``problems`` lists each with its file and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            problems[0]
            if len(problems) == 1
            else f"{len(problems)} configuration problems:\n  " + "\n  ".join(problems),
            hint="fix each file and key named above; `astrid config validate` re-checks them all",
        )


@dataclass
class LoadedConfig:
    config: AstridConfig
    # "section.key" (or "servers.NAME") -> the file path, or "env NAME"; absent = default.
    provenance: dict[str, str] = field(default_factory=dict[str, str])
    files: list[Path] = field(default_factory=list[Path])


def config_paths(home: Path, workspace: Path | None = None) -> list[tuple[str, Path]]:
    """The files read, lowest layer first."""
    paths = [("system", SYSTEM_CONFIG), ("user", home / "config.toml")]
    if workspace is not None:
        paths.append(("workspace", workspace / ".astrid" / "config.toml"))
    return paths


def load_config(
    home: Path | str | None = None,
    workspace: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    system_path: Path | None = None,
) -> LoadedConfig:
    """Load, merge and validate. Raises ConfigProblems listing every problem found.

    ``env`` defaults to ``os.environ``; it supplies ASTRID_HOME (when ``home`` is None) and
    the fallbacks for unset keys.
    """
    env = os.environ if env is None else env
    home_dir = _home_dir(home, env)
    state = _State(user_file=home_dir / "config.toml")
    layers = config_paths(home_dir, Path(workspace).expanduser().absolute() if workspace else None)
    if system_path is not None:
        layers[0] = ("system", system_path)
    admin_files = [path for name, path in layers if name != "workspace"]
    for name, path in layers:
        if name == "workspace" and _is_one_of(path, admin_files):
            continue  # e.g. workspace = ~: its .astrid/config.toml is the user layer, read above
        data = _read(path, state.problems)
        if data is None:
            continue
        state.files.append(path)
        _report_unknown_keys(data, path, state.problems)
        if name == "workspace":
            _merge_workspace(state, data, path, root=path.parent.parent.resolve())
        else:
            _merge_admin(state, data, path)
    _apply_env_fallbacks(state, env)
    config = _validate(state)
    if state.problems:
        raise ConfigProblems(state.problems)
    return LoadedConfig(config, state.provenance, state.files)


def with_workspace(loaded: LoadedConfig, workspace: Path | str, *, home: Path) -> LoadedConfig:
    """``loaded`` (the admin layers and environment the daemon started with) plus one
    workspace's ``.astrid/config.toml``, under the same tighten-only rules as ``load_config``.

    What a session in that workspace runs under. Raises ConfigProblems (naming file, key and
    value) when the workspace file tries to loosen anything; returns ``loaded`` itself when
    the workspace has no config file.
    """
    root = Path(workspace).expanduser().resolve()
    path = root / ".astrid" / "config.toml"
    if _is_one_of(path, loaded.files):
        return loaded
    state = _State(user_file=home / "config.toml")
    state.problems = []
    data = _read(path, state.problems)
    if data is None and not state.problems:
        return loaded
    state.merged = loaded.config.model_dump(mode="python")
    state.provenance = dict(loaded.provenance)
    state.files = [*loaded.files, path]
    if data is not None:
        _report_unknown_keys(data, path, state.problems)
        _merge_workspace(state, data, path, root=root)
    config = _validate(state)
    if state.problems:
        raise ConfigProblems(state.problems)
    return LoadedConfig(config, state.provenance, state.files)


@dataclass
class _State:
    user_file: Path
    merged: dict[str, Any] = field(default_factory=dict[str, Any])
    provenance: dict[str, str] = field(default_factory=dict[str, str])
    server_sources: list[str] = field(default_factory=list[str])  # parallel to merged servers
    files: list[Path] = field(default_factory=list[Path])
    problems: list[str] = field(default_factory=list[str])

    def current(self, section: str, key: str) -> tuple[Any, str]:
        """The value before this layer, and where it came from."""
        table = self.merged.get(section, {})
        if key in table:
            return table[key], self.provenance.get(f"{section}.{key}", "default")
        return _DEFAULTS[section][key], "default"

    @property
    def servers(self) -> list[dict[str, Any]]:
        return self.merged.setdefault("servers", [])


def _home_dir(home: Path | str | None, env: Mapping[str, str]) -> Path:
    if home is not None:
        return Path(home).expanduser()
    configured = env.get("ASTRID_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".astrid"


def _is_one_of(path: Path, others: list[Path]) -> bool:
    return path.exists() and any(other.exists() and path.samefile(other) for other in others)


def _read(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The parsed file, None when it does not exist. Unreadable or invalid is a problem:
    a policy file that cannot be read must not silently count as empty."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot be read: {exc.strerror or exc}")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
        return None


def _did_you_mean(name: str, known: list[str], prefix: str = "") -> str:
    guess = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {prefix}{guess[0]}?)" if guess else ""


# Sections that existed once and were removed: a file that still sets one is told why.
_REMOVED_SECTIONS = {
    "git": "[git] (auto_commit) is no longer supported: Astrid never commits for you (a commit "
    "runs the repository's hooks and filters outside the sandbox); delete the [git] section",
}


# Keys that existed once and were replaced: a file that still sets one is told what to write.
_REPLACED_KEYS = {
    "security.ask_when_untrusted": "security.ask_when_untrusted was replaced by "
    "security.information_flow (on by default: once untrusted content is in a session, sinks "
    "ask); delete the line",
}


def _report_unknown_keys(data: dict[str, Any], path: Path, problems: list[str]) -> None:
    for name, value in data.items():
        if name in _REMOVED_SECTIONS:
            problems.append(f"{path}: {_REMOVED_SECTIONS[name]}")
            continue
        if name not in SECTIONS:
            guess = difflib.get_close_matches(name, list(SECTIONS), n=1)
            hint = f" (did you mean [{guess[0]}]?)" if guess else ""
            problems.append(f"{path}: [{name}] is not a configuration section{hint}")
            continue
        model = section_model(name)
        tables = [value] if model is not None else value if isinstance(value, list) else []
        known = list((model or ServerConfig).model_fields)
        for table in tables:
            if not isinstance(table, dict):
                continue
            for key in table:
                if f"{name}.{key}" in _REPLACED_KEYS:
                    problems.append(f"{path}: {_REPLACED_KEYS[f'{name}.{key}']}")
                elif key not in known:
                    problems.append(
                        f"{path}: {name}.{key} is not a known key"
                        + _did_you_mean(key, known, f"{name}.")
                    )


def _tables(
    data: dict[str, Any], path: Path, problems: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The known table sections of a file with their known keys (unknown ones are reported)."""
    tables: list[tuple[str, dict[str, Any]]] = []
    for section, value in data.items():
        model = section_model(section) if section in SECTIONS else None
        if model is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"{path}: {section} must be a table ([{section}]), not {value!r}")
            continue
        known = model.model_fields
        tables.append((section, {k: v for k, v in value.items() if k in known}))
    return tables


def _server_entries(data: dict[str, Any], path: Path, problems: list[str]) -> list[dict[str, Any]]:
    value = data.get("servers", [])
    if not isinstance(value, list):
        problems.append(f"{path}: servers must be an array of tables ([[servers]])")
        return []
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict):
            problems.append(f"{path}: each servers entry must be a table ([[servers]])")
            continue
        name = entry.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append(f"{path}: server {name!r} is declared twice in this file")
                continue
            names.add(name)
        entries.append({k: v for k, v in entry.items() if k in ServerConfig.model_fields})
    return entries


def _merge_admin(state: _State, data: dict[str, Any], path: Path) -> None:
    for section, table in _tables(data, path, state.problems):
        target = state.merged.setdefault(section, {})
        for key, value in table.items():
            target[key] = value
            state.provenance[f"{section}.{key}"] = str(path)
    for entry in _server_entries(data, path, state.problems):
        # A later admin layer replaces a server of the same name (the user's own settings
        # win over the system's), like any other key.
        name = entry.get("name")
        index = _server_index(state, name)
        if index is None:
            state.servers.append(entry)
            state.server_sources.append(str(path))
        else:
            state.servers[index] = entry
            state.server_sources[index] = str(path)
        if isinstance(name, str):
            state.provenance[f"servers.{name}"] = str(path)


def _server_index(state: _State, name: object) -> int | None:
    for index, server in enumerate(state.servers):
        if isinstance(name, str) and server.get("name") == name:
            return index
    return None


# ---------------------------------------------------------------- workspace layer


def _merge_workspace(state: _State, data: dict[str, Any], path: Path, root: Path) -> None:
    for section, table in _tables(data, path, state.problems):
        target = state.merged.setdefault(section, {})
        for key, value in table.items():
            refusal = _refusal(state, section, key, value)
            if refusal:
                state.problems.append(f"{path}: {section}.{key} = {refusal}")
                continue
            name = f"{section}.{key}"
            before, source = state.current(section, key)
            if _rule(section, key)["workspace"] == "grow" and isinstance(before, list):
                grown = [*before, *(item for item in value if item not in before)]
                target[key] = grown
                state.provenance[name] = str(path) if source == "default" else f"{source} + {path}"
            else:
                target[key] = value
                state.provenance[name] = str(path)
    for entry in _server_entries(data, path, state.problems):
        problem = _workspace_server_problem(state, entry, root)
        if problem:
            state.problems.append(f"{path}: {problem}")
            continue
        # Whatever the file says: untrusted (tools need approval), sandboxed, started only
        # when the user asks, and running in the workspace (the sandbox grants its cwd).
        cwd = entry.get("cwd")
        entry |= {
            "trusted": False,
            "sandbox": True,
            # No network for a repository's server: not the host's, and no hosts through the
            # proxy either (a repository must not choose where data may go).
            "network": False,
            "net": [],
            "auto_start": False,
            "cwd": str((root / cwd).resolve() if isinstance(cwd, str) else root),
        }
        state.servers.append(entry)
        state.server_sources.append(str(path))
        if isinstance(entry.get("name"), str):
            state.provenance[f"servers.{entry['name']}"] = str(path)


def _refusal(state: _State, section: str, key: str, value: Any) -> str | None:
    """Why a workspace may not set ``section.key = value`` (None: it may), as
    "<value> <reason>" so the caller can prefix the file and key."""
    rule = _rule(section, key)
    kind = rule["workspace"]
    shown = _show(value, secret=f"{section}.{key}" in SECRET_KEYS)
    current, source = state.current(section, key)
    origin = "the built-in default" if source == "default" else source
    if kind == "admin":
        return (
            f"{shown} is admin-only: a workspace config may not set it "
            f"(set it in {state.user_file} or {SYSTEM_CONFIG})"
        )
    if kind in ("lower", "raise"):
        if not _is_number(value):
            return f"{shown} is not a number"
        if current is None or not _is_number(current):
            return None  # unlimited before (any limit tightens), or an admin error reported later
        if (value > current) if kind == "lower" else (value < current):
            verb = "lower" if kind == "lower" else "raise"
            return (
                f"{shown} would loosen the limit {_show(current)} from {origin} "
                f"(a workspace may only {verb} it)"
            )
        return None
    if kind == "grow":
        return None if isinstance(value, list) else f"{shown} must be a list of entries to add"
    if kind == "toward":
        order: list[Any] = rule["order"]  # type: ignore[assignment]
        wanted, have = _rank(order, value), _rank(order, current)
        choices = ", ".join(_show(choice) for choice in order)
        if wanted is None:
            return f"{shown} is not one of {choices}"
        if have is not None and wanted > have:
            phrase = rule.get("loosening") or f"is looser than {_show(current)}"
            return (
                f"{shown} {phrase} ({_show(current)} from {origin}; "
                f"a workspace may only move it toward {_show(order[0])})"
            )
        return None
    if kind == "unpriced":
        overrides = [
            state.provenance[f"model.{direction}_price_micros_per_million"]
            for direction in ("input", "output")
            if f"model.{direction}_price_micros_per_million" in state.provenance
        ]
        if overrides:
            return (
                f"{shown} cannot be set by a workspace while {overrides[0]} overrides the "
                "model prices (the override would then price a different model)"
            )
        return None
    return None  # "any"


def _workspace_server_problem(state: _State, entry: dict[str, Any], root: Path) -> str | None:
    name = entry.get("name")
    label = f"servers.{name}" if isinstance(name, str) else "servers entry"
    index = _server_index(state, name)
    if index is not None:
        return (
            f"{label} would shadow the server {name!r} from {state.server_sources[index]} "
            "(its allowances are keyed by name); give the workspace server another name"
        )
    admin_only = [key for key in entry if server_key_is_admin_only(key)]
    if admin_only:
        # The value is not shown: headers carry credentials.
        return (
            f"{label}.{admin_only[0]} is admin-only: a workspace config may not set it "
            f"(set it in {state.user_file} or {SYSTEM_CONFIG})"
        )
    env = entry.get("env")
    if isinstance(env, dict):
        unsafe = [n for n in env if n.startswith(_LOADER_ENV_PREFIXES) or n in _LOADER_ENV_NAMES]
        if unsafe:
            return (
                f"{label}.env sets {', '.join(unsafe)}: not allowed from a workspace (the "
                "sandbox launcher would load the code it names before the sandbox applies)"
            )
    cwd = entry.get("cwd")
    if isinstance(cwd, str) and not (root / cwd).resolve().is_relative_to(root):
        return (
            f"{label}.cwd = {cwd!r} is outside the workspace {root} "
            "(a workspace server runs inside its workspace)"
        )
    return None


def _rank(order: list[Any], value: Any) -> int | None:
    # By type too (1 == True): a workspace must write the real value, not something pydantic
    # would coerce into one after this check has looked at it.
    for index, choice in enumerate(order):
        if type(choice) is type(value) and choice == value:
            return index
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any, *, secret: bool = False) -> str:
    if secret:
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unset (unlimited)"
    return repr(value)


# ---------------------------------------------------------------- env and validation


def _apply_env_fallbacks(state: _State, env: Mapping[str, str]) -> None:
    for (section, key), names in _PLAIN_ENV.items():
        _fill_from_env(state, section, key, names, env)
    provider = state.merged.get("model", {}).get("provider", _DEFAULTS["model"]["provider"])
    for key, by_provider in _PROVIDER_ENV.items():
        names = by_provider.get(provider, ()) if isinstance(provider, str) else ()
        _fill_from_env(state, "model", key, names, env)
    # The built-in default model is Anthropic's; an OpenAI-compatible provider with no model
    # named gets OpenAI's small default instead of a model name its server cannot know.
    model_table = state.merged.setdefault("model", {})
    if provider == "openai" and "model" not in model_table:
        model_table["model"] = OPENAI_DEFAULT_MODEL
        state.provenance["model.model"] = "default for provider openai"


def _fill_from_env(
    state: _State, section: str, key: str, names: tuple[str, ...], env: Mapping[str, str]
) -> None:
    if key in state.merged.get(section, {}):
        return  # a file set it: the environment is a fallback, never an override
    for name in names:
        if env.get(name):
            state.merged.setdefault(section, {})[key] = env[name]
            state.provenance[f"{section}.{key}"] = f"env {name}"
            return


def _validate(state: _State) -> AstridConfig:
    try:
        return AstridConfig.model_validate(state.merged)
    except ValidationError as exc:
        state.problems += [_describe(error, state) for error in exc.errors(include_url=False)]
        return AstridConfig()


def _describe(error: ErrorDetails, state: _State) -> str:
    loc = error["loc"]
    section = str(loc[0]) if loc else ""
    if section == "servers" and len(loc) > 1 and isinstance(loc[1], int):
        server = state.servers[loc[1]]
        name = server.get("name")
        where = f"servers.{name if isinstance(name, str) else loc[1]}"
        where += "".join(f".{part}" for part in loc[2:])
        source = state.server_sources[loc[1]]
        secret = len(loc) > 2 and loc[2] in ("env", "headers")
    else:
        where = ".".join(str(part) for part in loc)
        key = ".".join(str(part) for part in loc[:2])
        source = state.provenance.get(key) or _section_sources(state, section)
        secret = key in SECRET_KEYS
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" = {_show(value, secret=secret)}"
    return f"{source}: {where}{shown}: {error['msg']}"


def _section_sources(state: _State, section: str) -> str:
    """Where a whole-section error (a cross-key rule) came from: the files of its keys."""
    sources = dict.fromkeys(
        source for name, source in state.provenance.items() if name.startswith(f"{section}.")
    )
    return " and ".join(sources) or "configuration"
