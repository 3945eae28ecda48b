"""astrid-telegram: the Telegram frontend, with the same approval semantics as the CLI."""

from .bot import APPROVAL_OPTIONS, AstridTelegramBot
from .settings import TelegramSettings

__version__ = "0.1.0"

__all__ = ["AstridTelegramBot", "TelegramSettings", "APPROVAL_OPTIONS", "__version__"]
