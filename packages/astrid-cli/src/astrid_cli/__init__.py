"""astrid-cli: the ``astrid`` command, a thin client of the astridd daemon."""

__version__ = "0.1.0"

__all__ = ["__version__"]
