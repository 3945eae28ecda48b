"""Names under which the gateway (``astrid mcp serve``) offers upstream tools and prompts.

A downstream client sees one flat list of tools from many servers, so each gets a namespaced
name. Two different (server, tool) pairs must never get the same name: a collision would let
one server's tool answer calls meant for another's. Naive ``f"{server}__{tool}"`` collides
(``a__b``+``c`` and ``a``+``b__c``), and so does cutting names to a length cap.

The scheme, in two forms that can never be equal:

* **readable** ``{server}__{tool}`` when the server name has no ``__``, does not start or end
  with ``_``, the tool name does not start with ``_``, both use only ``[A-Za-z0-9_-]``, and the
  whole fits ``MAX_NAME``. Then the *first* ``__`` is the separator: the server part holds no
  ``__`` and does not end with ``_``, so ``parse`` recovers exactly (server, tool).
* **hashed** ``{s}___{t}_{digest}`` otherwise, where ``s``/``t`` are shortened, cleaned hints
  (no ``__`` inside, no leading/trailing ``_``) and ``digest`` is 20 hex digits (80 bits) of
  BLAKE3 over the pair. Its first ``__`` is followed by ``_``: a readable name's tool part
  never starts with ``_``, so no hashed name equals a readable one; two hashed names are equal
  only if their digests collide. The gateway also refuses to offer two tools under one name.

Clients cap tool names (Claude Code and the model APIs: ``[A-Za-z0-9_-]{1,64}``), hence 64.
"""

from __future__ import annotations

import re

from astrid_crypto import content_hash

__all__ = ["MAX_NAME", "namespaced", "parse"]

MAX_NAME = 64
SEPARATOR = "__"
_DIGEST_HEX = 20
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_RUNS = re.compile(r"_+")


def _readable(server: str, tool: str) -> bool:
    return (
        bool(_SAFE.fullmatch(server))
        and bool(_SAFE.fullmatch(tool))
        and SEPARATOR not in server
        and not server.startswith("_")
        and not server.endswith("_")
        and not tool.startswith("_")
        and len(server) + len(SEPARATOR) + len(tool) <= MAX_NAME
    )


def _hint(text: str, size: int) -> str:
    """A short, cleaned piece of a name, for people reading the hashed form."""
    cleaned = _RUNS.sub("_", _UNSAFE_CHARS.sub("-", text)).strip("_")
    return cleaned[:size].strip("_") or "x"


def namespaced(server: str, tool: str) -> str:
    """The name a downstream client sees for ``tool`` of ``server`` (see the module doc)."""
    if _readable(server, tool):
        return f"{server}{SEPARATOR}{tool}"
    # Length-prefixed, so ("a", "bc") and ("ab", "c") hash differently.
    pair = f"{len(server)}:{server}|{tool}".encode()
    digest = content_hash(pair).hex[:_DIGEST_HEX]
    room = MAX_NAME - len(digest) - len("___") - len("_")
    server_hint = _hint(server, room // 2)
    tool_hint = _hint(tool, room - len(server_hint))
    return f"{server_hint}___{tool_hint}_{digest}"


def parse(name: str) -> tuple[str, str] | None:
    """(server, tool) of a readable name; None for a hashed one (look those up in a table)."""
    server, separator, tool = name.partition(SEPARATOR)
    if not separator or not _readable(server, tool):
        return None
    return server, tool
