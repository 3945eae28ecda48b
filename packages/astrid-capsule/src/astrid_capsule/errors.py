"""Every error a capsule can raise, in one place (each with a code and a hint, as the
``astrid_core`` error tree asks).

Why one module: a capsule fails at four stages — its manifest is read, its install is
trusted, its files are re-verified before use, its WASM runs — and a caller (the daemon, the
CLI, a test) wants to catch "a capsule problem" or one stage of it without knowing which
module of which package raised it.
"""

from __future__ import annotations

from astrid_core import AstridError, ConfigError

__all__ = [
    "CapsuleError",
    "CapsuleLoadRefused",
    "ManifestError",
    "TrustRequired",
]


class CapsuleError(AstridError):
    """A capsule misbehaved while running: a WASM trap, a bad answer, a limit hit."""

    code = "capsule.error"
    default_hint = "check the capsule's manifest and files; `astrid capsule info NAME` shows them"


class CapsuleLoadRefused(AstridError):
    """An installed capsule no longer matches what was trusted (files, record, component), so
    nothing of it is used."""

    code = "capsule.load_refused"
    default_hint = (
        "reinstall the capsule from a source you trust (`astrid capsule install --trust DIR`) "
        "or remove it (`astrid capsule remove NAME`)"
    )


class ManifestError(ConfigError):
    """``Capsule.toml`` is invalid; ``problems`` lists every problem found, each with its line."""

    code = "capsule.manifest"
    default_hint = (
        "fix Capsule.toml as the message says; `astrid capsule compile --check` validates it"
    )

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the manifest"
        super().__init__(head if len(problems) == 1 else head + ":\n  " + "\n  ".join(problems))


class TrustRequired(AstridError):
    """An install or update needs the person's explicit trust and did not get it."""

    code = "capsule.trust_required"
    default_hint = "review the disclosure, then re-run with --trust or type `trust <name>`"
