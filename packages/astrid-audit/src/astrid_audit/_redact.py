"""Redaction before anything is written: secrets become salted digests.

A redacted value is replaced by ``[redacted:<16 hex>]`` where the hex is BLAKE3(salt || value):
the same secret always maps to the same marker within one log (so an auditor can see "the same
key was used twice") but the marker reveals nothing, and the log stays verifiable because
redaction happens before hashing and signing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from astrid_crypto import content_hash

__all__ = ["Redactor", "SECRET_PATTERNS", "SECRET_KEY_NAMES"]

# Known token shapes. Each is tested in tests/test_redact.py.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{16,}")),
    ("openai_key", re.compile(r"sk-(?:proj-)?[A-Za-z0-9_\-]{20,}")),
    (
        "github_token",
        re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b|github_pat_[A-Za-z0-9_]{30,}"),
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("telegram_bot_token", re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}")),
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
)


def _scoped(pattern: str) -> str:
    """``(?i)x`` -> ``(?i:x)``: a global flag is only allowed at the start of a whole regex."""
    return f"(?i:{pattern[4:]})" if pattern.startswith("(?i)") else f"(?:{pattern})"


# One scan that says whether any shape occurs at all: most texts hold no secret, and running
# the shapes one by one on each of them was most of the cost of an audit append.
_ANY_SHAPE = re.compile("|".join(_scoped(p.pattern) for _, p in SECRET_PATTERNS))
# Argument names whose values are secret whatever they look like.
SECRET_KEY_NAMES = re.compile(
    r"(?i)(pass(word)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key)"
)


class Redactor:
    def __init__(self, salt: bytes, extra_secrets: Iterable[str] = ()) -> None:
        self._salt = salt
        # Values marked secret elsewhere (e.g. [env.X] secret = true) are redacted wherever
        # they appear, longest first so a secret containing another is replaced whole.
        self._literals = sorted({s for s in extra_secrets if len(s) >= 6}, key=len, reverse=True)
        self.generation = 0  # bumped with every secret added: what was redacted before is stale

    def marker(self, secret: str) -> str:
        return f"[redacted:{content_hash(self._salt + secret.encode()).hex[:16]}]"

    def add_secret(self, value: str) -> None:
        if len(value) >= 6 and value not in self._literals:
            self._literals.append(value)
            self._literals.sort(key=len, reverse=True)
            self.generation += 1

    def text(self, value: str) -> str:
        if not value:
            return value
        for literal in self._literals:
            if literal in value:
                value = value.replace(literal, self.marker(literal))
        if not _ANY_SHAPE.search(value):
            return value
        for _, pattern in SECRET_PATTERNS:
            value = pattern.sub(lambda m: self.marker(m.group(0)), value)
        return value

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            if key and SECRET_KEY_NAMES.search(key) and value:
                return self.marker(value)
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}  # type: ignore[misc]
        if isinstance(value, list):
            return [self.value(v, key) for v in value]  # type: ignore[misc]
        return value
