"""Layered, typed, tighten-only configuration (the 18 sections of seed 000).

``load_config`` is behind ``astrid config validate``, ``redacted_view`` behind
``astrid config show`` and ``config_paths`` behind ``astrid config paths``. Every key with its
default, its documentation and its workspace rule is in ``defaults.toml`` (``DEFAULTS_FILE``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from ._load import (
    MASK,
    SYSTEM_CONFIG,
    ConfigProblems,
    LoadedConfig,
    config_paths,
    load_config,
    with_workspace,
)
from ._models import (
    DEFAULTS_FILE,
    SECTIONS,
    AstridConfig,
    ServerConfig,
    render_defaults_toml,
    rule_text,
    section_model,
    workspace_rule,
)

__all__ = [
    "AstridConfig",
    "ServerConfig",
    "SECTIONS",
    "LoadedConfig",
    "load_config",
    "with_workspace",
    "config_paths",
    "ConfigProblems",
    "SYSTEM_CONFIG",
    "DEFAULTS_FILE",
    "redacted_view",
    "field_docs",
    "render_defaults_toml",
]


def field_docs() -> dict[str, str]:
    """ "section.key" -> what it does and what a workspace layer may do with it."""
    docs: dict[str, str] = {}
    for section in SECTIONS:
        model = section_model(section)
        if model is None:
            docs[section] = "MCP servers ([[servers]]); a workspace may add untrusted ones."
            continue
        for key, field in model.model_fields.items():
            rule = rule_text(workspace_rule(section, key))
            docs[f"{section}.{key}"] = f"{field.description} A workspace {rule}."
    return docs


def redacted_view(loaded: LoadedConfig, *, docs: bool = False) -> dict[str, object]:
    """What `astrid config show` prints: every value with its source, secrets masked.

    Keys are "section.key" (one "servers.NAME" per MCP server); each entry is
    ``{"value": ..., "source": path | "env NAME" | "default"}``, plus ``"doc"`` when asked.
    """
    documentation = field_docs() if docs else {}
    result: dict[str, object] = {}

    def put(name: str, value: object, doc_key: str) -> None:
        entry: dict[str, object] = {
            "value": value,
            "source": loaded.provenance.get(name, "default"),
        }
        if docs:
            entry["doc"] = documentation[doc_key]
        result[name] = entry

    for section in SECTIONS:
        model = section_model(section)
        if model is None:
            for server in loaded.config.servers:
                put(f"servers.{server.name}", _redacted_server(server), section)
            if not loaded.config.servers:
                put(section, [], section)
            continue
        values = getattr(loaded.config, section)
        for key in model.model_fields:
            put(f"{section}.{key}", _redacted(getattr(values, key)), f"{section}.{key}")
    return result


def _redacted(value: object) -> object:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str) and "://" in value:
        return _without_credentials(value)
    return value


def _redacted_server(server: ServerConfig) -> dict[str, object]:
    shown: dict[str, object] = server.model_dump(mode="python")
    shown["env"] = dict.fromkeys(server.env, MASK)  # env is where servers get their tokens
    shown["headers"] = dict.fromkeys(server.headers, MASK)  # and headers, for url servers
    if server.url is not None:
        shown["url"] = _without_credentials(server.url)
    return shown


def _without_credentials(url: str) -> str:
    """``https://user:pw@host/`` -> ``https://********@host/``: endpoints may embed a key."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
    except ValueError:
        return MASK
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))
