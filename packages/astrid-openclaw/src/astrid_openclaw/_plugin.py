"""An OpenClaw plugin on disk: recognised and described from its JSON files alone.

Nothing here runs plugin code. ``openclaw.plugin.json`` (id, configSchema, channels,
providers, contracts.tools, …) and ``package.json`` (``openclaw.extensions``, ``main``,
dependencies) are read as data; the entry module is only located.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrid_core import AstridError

__all__ = ["OpenClawError", "PluginInfo", "is_openclaw_plugin", "read_plugin"]

PLUGIN_MANIFEST = "openclaw.plugin.json"
_ENTRY_GUESSES = ("index.ts", "index.js", "index.mjs", "src/index.ts", "src/index.js")


class OpenClawError(AstridError):
    code = "openclaw.error"
    default_hint = (
        "check the plugin's openclaw.plugin.json and package.json; "
        "`astrid capsule compile PLUGIN_DIR` explains each step it takes"
    )


@dataclass(frozen=True)
class PluginInfo:
    root: Path
    id: str
    name: str
    version: str
    description: str
    entry: Path
    config_schema: dict[str, Any]
    dependencies: dict[str, str]
    channels: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    declared_tools: tuple[str, ...] = ()
    optional_tools: tuple[str, ...] = field(default=())
    package_name: str = ""

    @property
    def capsule_name(self) -> str:
        """A valid ``[package] name`` derived from the plugin id."""
        name = re.sub(r"[^a-z0-9_-]+", "-", self.id.lower()).strip("-_") or "openclaw-plugin"
        return name[:64]

    @property
    def capsule_version(self) -> str:
        if re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?", self.version):
            return self.version
        return "0.0.0"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OpenClawError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OpenClawError(f"{path}: must hold a JSON object")
    return data  # pyright: ignore[reportUnknownVariableType]


def _extensions(package: dict[str, Any]) -> list[str]:
    openclaw = package.get("openclaw")
    if isinstance(openclaw, dict):
        ext = openclaw.get("extensions")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(ext, list):
            return [str(e) for e in ext]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return []


def is_openclaw_plugin(path: Path) -> bool:
    """Whether ``path`` is a folder holding an OpenClaw plugin (and not a capsule source)."""
    if not path.is_dir():
        return False
    if (path / PLUGIN_MANIFEST).is_file():
        return True
    try:
        return bool(_extensions(_read_json(path / "package.json")))
    except OpenClawError:
        return False


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return ()


def read_plugin(root: Path) -> PluginInfo:
    root = root.resolve()
    manifest = _read_json(root / PLUGIN_MANIFEST)
    package = _read_json(root / "package.json")
    if not manifest and not _extensions(package):
        raise OpenClawError(
            f"{root} is not an OpenClaw plugin: no {PLUGIN_MANIFEST} and no "
            '"openclaw": {"extensions": [...]} in package.json',
            hint="point `astrid capsule compile` at the plugin's folder (or its npm name)",
        )
    ident = str(manifest.get("id") or package.get("name") or root.name)
    ident = ident.rsplit("/", 1)[-1]
    entries = _extensions(package) or (
        [str(package["main"])] if isinstance(package.get("main"), str) else []
    )
    entries += [g for g in _ENTRY_GUESSES if (root / g).is_file()]
    entry = None
    for candidate in entries:
        path = (root / candidate).resolve()
        if not path.is_relative_to(root):
            raise OpenClawError(f"{root}: the entry {candidate!r} is outside the plugin folder")
        if path.is_file():
            entry = path
            break
    if entry is None:
        raise OpenClawError(
            f"{root}: no entry module found (tried {', '.join(entries) or 'nothing'})",
            hint='set package.json "openclaw": {"extensions": ["./index.ts"]}',
        )
    schema = manifest.get("configSchema")
    contracts = manifest.get("contracts")
    metadata = manifest.get("toolMetadata")
    optional: list[str] = []
    if isinstance(metadata, dict):
        for tool_name, meta in metadata.items():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(meta, dict) and meta.get("optional"):  # pyright: ignore[reportUnknownMemberType]
                optional.append(str(tool_name))  # pyright: ignore[reportUnknownArgumentType]
    deps = package.get("dependencies")
    return PluginInfo(
        root=root,
        id=ident,
        name=str(manifest.get("name") or ident),
        version=str(manifest.get("version") or package.get("version") or "0.0.0"),
        description=str(manifest.get("description") or package.get("description") or ""),
        entry=entry,
        config_schema=schema if isinstance(schema, dict) else {"type": "object"},  # pyright: ignore[reportUnknownArgumentType]
        dependencies={str(k): str(v) for k, v in deps.items()} if isinstance(deps, dict) else {},  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        channels=_strings(manifest.get("channels")),
        providers=_strings(manifest.get("providers")),
        declared_tools=_strings(contracts.get("tools")) if isinstance(contracts, dict) else (),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        optional_tools=tuple(optional),
        package_name=str(package.get("name") or ""),
    )
