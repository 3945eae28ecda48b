"""Astrid: a secure runtime for AI agents — the meta-package that installs every part.

``pip install astrid`` gives the ``astrid`` command and the ``astridd`` daemon (with the
embedded Telegram frontend when configured).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
