"""Operational workspace boundaries: confinement, environment scrubbing, egress (issue #20)."""

# --- descriptor-based file access (issue #19): `from astrid_workspace import fs`
from . import fs

__all__: list[str] = []

__all__ += ["fs"]
