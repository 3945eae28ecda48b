"""The actions of the file-writing tools carry their content by size and BLAKE3 hash.

The content counts toward the argument size limit (``security.max_argument_bytes``), and the
audit entry of the decision names exactly what was to be written, without the bytes.
"""

from __future__ import annotations

from astrid_core import BadInputError, FileWrite
from astrid_crypto import CANONICAL_V2, canonical_json, content_hash

__all__ = ["edit_action", "write_action"]


def write_action(path: str, content: str) -> FileWrite:
    """``write_file``: the content is the file's new bytes (UTF-8)."""
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInputError(
            f"argument 'content' is not valid Unicode text: {exc.reason}",
            hint="send the file's text without lone surrogates",
        ) from exc
    return FileWrite(path=path, content_bytes=len(data), content_blake3=content_hash(data).hex)


def edit_action(path: str, old: str, new: str, replace_all: bool) -> FileWrite:
    """``edit_file``: the content is the edit, the RFC 8785 text of its three arguments."""
    edit = {"new_string": new, "old_string": old, "replace_all": replace_all}
    data = canonical_json(edit, CANONICAL_V2)
    return FileWrite(path=path, content_bytes=len(data), content_blake3=content_hash(data).hex)
