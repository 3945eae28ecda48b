"""Tamper-evident, hash-chained, Merkle-tree audit log that fails closed."""

__all__: list[str] = []
