"""Signed, attenuable capability tokens checked on every use."""

__all__: list[str] = []
