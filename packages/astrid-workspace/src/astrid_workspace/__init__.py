"""Operational workspace boundaries: confinement, environment scrubbing, egress (issue #20)."""

__all__: list[str] = []
