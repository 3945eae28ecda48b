"""Layered loading: defaults → /etc/astrid → $ASTRID_HOME → <workspace>/.astrid, then env.

The workspace layer may only *tighten*: a loosening value is refused with the file, the key,
the value it tried and the limit it hit. Servers a workspace adds are untrusted and sandboxed,
whatever the file says. Environment variables fill values that are still unset (fallbacks, not
overrides). Every value remembers where it came from (``provenance``).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from astrid_core import ConfigError

from ._models import AstridConfig

__all__ = ["LoadedConfig", "load_config", "config_paths", "ConfigProblems"]

_MODE_RANK = {"autonomous": 2, "guided": 1, "safe": 0}
_ESCAPE_RANK = {"ask": 1, "deny": 0}
_LOWER_IS_TIGHTER = {
    ("budget", "session_limit_micros"),
    ("budget", "per_action_limit_micros"),
    ("budget", "workspace_limit_micros"),
    ("security", "max_argument_bytes"),
    ("security", "approval_timeout_seconds"),
    ("security", "always_token_ttl_seconds"),
    ("timeouts", "bash_seconds"),
    ("timeouts", "tool_call_seconds"),
    ("timeouts", "mcp_call_seconds"),
    ("runtime", "max_turns"),
    ("subagents", "max_depth"),
    ("subagents", "max_concurrent"),
}
_GROW_ONLY = {
    "blocked_commands",
    "blocked_tools",
    "denied_paths",
    "denied_hosts",
    "approval_required_tools",
}
_ENV_FALLBACKS = {
    ("model", "api_key"): ("ASTRID_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
    ("model", "model"): ("ASTRID_MODEL",),
    ("model", "provider"): ("ASTRID_PROVIDER",),
    ("model", "base_url"): ("ASTRID_BASE_URL", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"),
    ("telegram", "bot_token"): ("TELEGRAM_BOT_TOKEN",),
}


class ConfigProblems(ConfigError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            problems[0]
            if len(problems) == 1
            else f"{len(problems)} configuration problems:\n  " + "\n  ".join(problems)
        )


@dataclass
class LoadedConfig:
    config: AstridConfig
    provenance: dict[str, str] = field(default_factory=dict[str, str])
    files: list[Path] = field(default_factory=list[Path])


def config_paths(home: Path, workspace: Path | None = None) -> list[tuple[str, Path]]:
    paths = [("system", Path("/etc/astrid/config.toml")), ("user", home / "config.toml")]
    if workspace is not None:
        paths.append(("workspace", workspace / ".astrid" / "config.toml"))
    return paths


def _read(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
        return {}


def _unknown_keys(data: dict[str, Any], path: Path, problems: list[str]) -> None:
    sections = AstridConfig.model_fields
    for name, value in data.items():
        if name not in sections:
            guess = difflib.get_close_matches(name, list(sections), n=1)
            problems.append(
                f"{path}: [{name}] is not a configuration section"
                + (f" (did you mean [{guess[0]}]?)" if guess else "")
            )
            continue
        annotation = sections[name].annotation
        model = annotation if isinstance(annotation, type) else None
        if model is not None and isinstance(value, dict) and hasattr(model, "model_fields"):
            known = list(model.model_fields)  # type: ignore[attr-defined]
            for key in value:
                if key not in known:
                    guess = difflib.get_close_matches(key, known, n=1)
                    problems.append(
                        f"{path}: {name}.{key} is not a known key"
                        + (f" (did you mean {name}.{guess[0]}?)" if guess else "")
                    )


def _tighten_check(
    merged: dict[str, Any], layer: dict[str, Any], path: Path, problems: list[str]
) -> None:
    defaults = AstridConfig().model_dump(mode="python")
    for section, key in _LOWER_IS_TIGHTER:
        if key not in layer.get(section, {}):
            continue
        tried = layer[section][key]
        current = merged.get(section, {}).get(key, defaults[section][key])
        if current is None:
            continue  # unlimited before: any limit tightens
        if tried is None or (isinstance(tried, int | float) and tried > current):
            problems.append(
                f"{path}: {section}.{key} = {tried!r} would loosen the limit {current!r} "
                "(a workspace may only lower it)"
            )
    mode = layer.get("workspace", {}).get("mode")
    if mode is not None:
        current = merged.get("workspace", {}).get("mode", defaults["workspace"]["mode"])
        if _MODE_RANK.get(mode, 9) > _MODE_RANK.get(current, 0):
            problems.append(
                f"{path}: workspace.mode = {mode!r} is looser than {current!r} "
                '(a workspace may only move toward "safe")'
            )
    escape = layer.get("workspace", {}).get("escape_policy")
    if escape is not None:
        current = merged.get("workspace", {}).get(
            "escape_policy", defaults["workspace"]["escape_policy"]
        )
        if _ESCAPE_RANK.get(escape, 9) > _ESCAPE_RANK.get(current, 0):
            problems.append(
                f"{path}: workspace.escape_policy = {escape!r} is looser than {current!r}"
            )
    security = layer.get("security", {})
    if security.get("allow_private_networks") is True:
        problems.append(f"{path}: security.allow_private_networks = true would loosen the policy")
    if security.get("sandbox_bash") is False:
        problems.append(f"{path}: security.sandbox_bash = false would unsandbox the bash tool")
    if security.get("ask_when_untrusted") is False and merged.get("security", {}).get(
        "ask_when_untrusted"
    ):
        problems.append(f"{path}: security.ask_when_untrusted = false would turn approvals off")


def _merge(
    base: dict[str, Any],
    layer: dict[str, Any],
    source: str,
    provenance: dict[str, str],
    workspace: bool,
) -> None:
    for section, value in layer.items():
        if section == "servers" and isinstance(value, list):
            servers = [dict(s) for s in value if isinstance(s, dict)]
            if workspace:  # untrusted and sandboxed, whatever the file says
                for server in servers:
                    server["trusted"] = False
                    server["sandbox"] = True
            base.setdefault("servers", []).extend(servers)
            provenance["servers"] = source
            continue
        if not isinstance(value, dict):
            base[section] = value
            provenance[section] = source
            continue
        target = base.setdefault(section, {})
        for key, item in value.items():
            if workspace and key in _GROW_ONLY and isinstance(item, list):
                target[key] = [*target.get(key, []), *item]
            else:
                target[key] = item
            provenance[f"{section}.{key}"] = source


def load_config(
    home: Path | str | None = None,
    workspace: Path | str | None = None,
    *,
    env: dict[str, str] | None = None,
    system_path: Path | None = None,
) -> LoadedConfig:
    """Load, merge and validate. Raises ConfigProblems listing every problem found."""
    home_dir = (
        Path(home)
        if home is not None
        else Path(os.environ.get("ASTRID_HOME") or Path.home() / ".astrid")
    )
    env = dict(os.environ) if env is None else env
    problems: list[str] = []
    merged: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    files: list[Path] = []
    layers = config_paths(home_dir, Path(workspace) if workspace else None)
    if system_path is not None:
        layers[0] = ("system", system_path)
    for name, path in layers:
        data = _read(path, problems)
        if not data:
            continue
        files.append(path)
        _unknown_keys(data, path, problems)
        if name == "workspace":
            _tighten_check(merged, data, path, problems)
        _merge(merged, data, str(path), provenance, workspace=name == "workspace")
    for (section, key), names in _ENV_FALLBACKS.items():
        if merged.get(section, {}).get(key) is None:
            for env_name in names:
                if env.get(env_name):
                    merged.setdefault(section, {})[key] = env[env_name]
                    provenance[f"{section}.{key}"] = f"env {env_name}"
                    break
    try:
        config = AstridConfig.model_validate(merged)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            source = provenance.get(where) or provenance.get(where.rsplit(".", 1)[0]) or "config"
            problems.append(f"{source}: {where}: {error['msg']}")
        config = AstridConfig()
    if problems:
        raise ConfigProblems(problems)
    return LoadedConfig(config, provenance, files)
