"""The astrid command: a thin client of the astridd daemon."""

__all__: list[str] = []
