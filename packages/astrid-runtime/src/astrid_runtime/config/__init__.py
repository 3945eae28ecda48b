"""Layered, typed, tighten-only configuration (the 18 sections of seed 000)."""

from ._load import ConfigProblems, LoadedConfig, config_paths, load_config
from ._models import SECTIONS, AstridConfig, ServerConfig

__all__ = [
    "AstridConfig",
    "ServerConfig",
    "SECTIONS",
    "LoadedConfig",
    "load_config",
    "config_paths",
    "ConfigProblems",
    "redacted_view",
]


def redacted_view(loaded: LoadedConfig) -> dict[str, object]:
    """What `astrid config show` prints: every value with its source, secrets masked."""
    data = loaded.config.model_dump(mode="json")
    result: dict[str, object] = {}
    for section, value in data.items():
        if isinstance(value, dict):
            for key, item in value.items():
                secret = ("key" in key or "token" in key) and item is not None
                source = loaded.provenance.get(f"{section}.{key}", "default")
                result[f"{section}.{key}"] = {
                    "value": "********" if secret else item,
                    "source": source,
                }
        else:
            result[section] = {"value": value, "source": loaded.provenance.get(section, "default")}
    return result
