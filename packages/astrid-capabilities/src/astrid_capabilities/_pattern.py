"""ResourcePattern: which resource URIs a capability covers.

A pattern is one string. Backslash escapes a glob metacharacter (``\\*``, ``\\?``, ``\\[``,
``\\]``, ``\\\\``); a pattern without an unescaped metacharacter is *exact* and is compared as a
plain string, with no glob engine involved. Glob patterns use gitignore wildmatch semantics
(pathspec): ``*`` and ``?`` stay inside one ``/`` segment, ``**`` crosses segments. Character
classes ``[...]`` are refused: gitignore's can match ``/`` (``[!a]``), crossing segments.
Unlike gitignore, a pattern never matches the *contents* of a directory it names: ``/tmp/a``
covers ``/tmp/a`` only, and ``/tmp/**`` covers everything below ``/tmp`` (not ``/tmp`` itself).

``ResourcePattern.literal(uri)`` escapes every metacharacter, so approving the file ``/tmp/*``
grants that one oddly named file and nothing else (DESIGN.md §5, "literal input is literal").

Hostile URIs are rejected when a pattern is created *and* when a URI is matched: ``..`` and
``.`` segments, empty segments, NUL and control characters, and percent-encodings that are not
canonical (lowercase hex, encoded unreserved characters like ``%2e``, encoded separators like
``%2f`` or ``%5c``, encoded ``%``, invalid or overlong UTF-8). A downstream component that
decodes once more can therefore never turn an approved URI into a traversal.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from pathspec.patterns.gitignore import GitIgnorePatternError
from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

from astrid_core import BadInputError

__all__ = ["ResourcePattern", "check_resource_uri", "escape_glob", "SplitUri"]

_SCHEME: Final = re.compile(r"^([a-z][a-z0-9+.-]{0,31})://")
_META: Final = frozenset("*?")
_ESCAPABLE: Final = frozenset("*?[]\\")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Decoded characters that would become separators, escapes or traversal if decoded downstream.
_FORBIDDEN_DECODED: Final = frozenset("/\\%")
_PERCENT: Final = re.compile(r"((?:%[0-9A-Fa-f]{2})+)")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_MAX_URI: Final = 4096

_PATTERN_HINT: Final = (
    "patterns look like file:///home/me/** or mcp://server/tool; use ResourcePattern.literal() "
    "for a path a user approved"
)
_URI_HINT: Final = "resource URIs are scheme://path with canonical, already-resolved segments"


def _bad(what: str, text: str, problem: str, hint: str) -> BadInputError:
    return BadInputError(f"{what} {text[:200]!r} is invalid: {problem}", hint=hint)


def _percent_problem(segment: str) -> str | None:
    """Why the percent-encodings in ``segment`` are not canonical, or None."""
    if "%" not in segment:
        return None
    pieces = _PERCENT.split(segment)
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            if "%" in piece:
                return "a '%' is not followed by two hex digits (non-canonical percent-encoding)"
            continue
        if piece != piece.upper():
            return f"percent-encoding {piece!r} uses lowercase hex (not canonical)"
        raw = bytes(int(piece[i + 1 : i + 3], 16) for i in range(0, len(piece), 3))
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"percent-encoding {piece!r} is not valid UTF-8 (overlong or truncated)"
        for char in decoded:
            if char in _UNRESERVED:
                return f"percent-encoding {piece!r} encodes {char!r}, which must not be encoded"
            if char in _FORBIDDEN_DECODED or ord(char) < 0x20 or ord(char) == 0x7F:
                return f"percent-encoding {piece!r} encodes a separator or control character"
    return None


def _segment_problem(segment: str) -> str | None:
    if segment == "":
        return "it has an empty segment ('//' or a trailing '/')"
    if segment in (".", ".."):
        return f"it has a {segment!r} segment (resolve the path first)"
    # NFKC leaves ASCII alone: only a non-ASCII segment can be a look-alike of '.' or '..'.
    if not segment.isascii() and unicodedata.normalize("NFKC", segment) in (".", ".."):
        return f"segment {segment!r} is a Unicode look-alike of '.' or '..'"
    return _percent_problem(segment)


def _text_problem(text: str) -> str | None:
    if len(text) > _MAX_URI:
        return f"it is {len(text)} characters long (limit {_MAX_URI})"
    if "\x00" in text:
        return "it contains a NUL byte"
    if _CONTROL.search(text):
        return "it contains a control character"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains a lone surrogate (not valid Unicode)"
    return None


@dataclass(frozen=True, slots=True)
class SplitUri:
    """A validated resource URI: scheme, whether the rest starts with '/', and the rest."""

    uri: str
    scheme: str
    rooted: bool
    path: str  # the part after "scheme://" and the optional leading "/"


def _split(text: str) -> tuple[str, bool, str] | str:
    """(scheme, rooted, path) or a problem description."""
    problem = _text_problem(text)
    if problem is not None:
        return problem
    found = _SCHEME.match(text)
    if found is None:
        return "it does not start with a lowercase scheme and '://'"
    rest = text[found.end() :]
    rooted = rest.startswith("/")
    return found.group(1), rooted, rest[1:] if rooted else rest


@functools.lru_cache(maxsize=4096)
def check_resource_uri(uri: str) -> SplitUri:
    """Validate a concrete resource URI (from a SensitiveAction) or raise BadInputError.

    Cached: a pure function of the string (a refusal raises, and is never cached), and every
    decision checks the URI of its action, mostly the same few over and over."""
    parts = _split(uri)
    if isinstance(parts, str):
        raise _bad("resource URI", uri, parts, _URI_HINT)
    scheme, rooted, path = parts
    if path or not rooted:  # "file:///" (the root) is the one URI with no segment
        for segment in path.split("/"):
            problem = _segment_problem(segment)
            if problem is not None:
                raise _bad("resource URI", uri, problem, _URI_HINT)
    return SplitUri(uri, scheme, rooted, path)


def escape_glob(text: str) -> str:
    """Escape every glob metacharacter so the result is an exact pattern for ``text``."""
    return "".join("\\" + c if c in _ESCAPABLE else c for c in text)


def _unescape(pattern: str) -> tuple[str, int | None] | str:
    """(literal text, index in it of the first unescaped metacharacter) or a problem."""
    out: list[str] = []
    first_meta: int | None = None
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            nxt = next(chars, None)
            if nxt is None:
                return "it ends with a lone backslash"
            if nxt not in _ESCAPABLE:
                return f"'\\{nxt}' is not an escape (only * ? [ ] and \\ can be escaped)"
            out.append(nxt)
            continue
        if char == "[":
            # gitignore character classes can match '/' ("[!a]", "[+-0]"), which would let a
            # one-segment glob cross directories; escape '[' to mean a literal bracket.
            return "character classes '[...]' are not supported (escape '[' as '\\[')"
        if char in _META and first_meta is None:
            first_meta = len(out)
        out.append(char)
    return "".join(out), first_meta


def _check_mcp_spelling(text: str) -> None:
    """Refuse the seed's ``mcp://server:tool`` spelling: an MCP tool's resource is always
    ``mcp://server/tool``, so a pattern without a ``/`` after the server would silently match
    nothing (a grant that grants nothing, a block list that blocks nothing)."""
    if not text.startswith("mcp://"):
        return
    rest = text[len("mcp://") :]
    if "/" in rest or "**" in rest:  # '**' crosses '/'
        return
    fixed = "mcp://" + (rest.replace(":", "/", 1) if ":" in rest else f"{rest}/*")
    raise BadInputError(
        f"resource pattern {text!r} matches no MCP tool: tools are mcp://server/tool",
        hint=f"write {fixed!r}",
    )


@dataclass(frozen=True, slots=True)
class ResourcePattern:
    """An exact resource URI or a glob over resource URIs. Create with ``ResourcePattern(text)``."""

    pattern: str
    exact: bool = field(init=False, compare=False)
    scheme: str = field(init=False, compare=False, repr=False)
    rooted: bool = field(init=False, compare=False, repr=False)
    literal_prefix: str = field(init=False, compare=False, repr=False)
    """The unescaped text before the first metacharacter (the whole URI when exact)."""
    tail: str = field(init=False, compare=False, repr=False)
    """The raw pattern text from the first metacharacter on ("" when exact)."""
    _regex: re.Pattern[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        text = self.pattern
        if not isinstance(text, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(f"a resource pattern must be a string, got {type(text).__name__}")
        _check_mcp_spelling(text)
        exact, scheme, rooted, literal_prefix, tail, regex = _analyse(text)
        set_ = object.__setattr__
        set_(self, "exact", exact)
        set_(self, "scheme", scheme)
        set_(self, "rooted", rooted)
        set_(self, "literal_prefix", literal_prefix)
        set_(self, "tail", tail)
        set_(self, "_regex", regex)

    @classmethod
    def literal(cls, uri: str) -> ResourcePattern:
        """The exact pattern for ``uri``: glob metacharacters in it are escaped, never expanded."""
        check_resource_uri(uri)
        return cls(escape_glob(uri))

    @property
    def wildcard_count(self) -> int:
        """How many metacharacters the pattern has (0 when exact); fewer = more specific."""
        if self.exact:
            return 0
        return sum(1 for c in self.tail if c in _META)

    @property
    def bucket(self) -> str:
        """Index key: the literal prefix cut after its last '/' (the whole URI when exact)."""
        if self.exact:
            return self.literal_prefix
        return self.literal_prefix[: self.literal_prefix.rfind("/") + 1]

    def matches(self, uri: str) -> bool:
        """True if the concrete ``uri`` is covered. Invalid URIs never match (fail closed)."""
        try:
            split = check_resource_uri(uri)
        except BadInputError:
            return False
        return self.matches_checked(split)

    def matches_checked(self, split: SplitUri) -> bool:
        """``matches`` for a URI that ``check_resource_uri`` already accepted."""
        if self._regex is None:
            return split.uri == self.literal_prefix
        if split.scheme != self.scheme or split.rooted != self.rooted:
            return False
        return self._regex.fullmatch(split.path) is not None

    def __str__(self) -> str:
        return self.pattern


_Analysis = tuple[bool, str, bool, str, str, "re.Pattern[str] | None"]


# A pure function of the pattern text, so caching it is safe; it spares every stored-token
# re-read from recompiling the same glob. Errors are raised, and exceptions are never cached.
@functools.lru_cache(maxsize=8192)
def _analyse(text: str) -> _Analysis:
    """(exact, scheme, rooted, literal_prefix, tail, regex) for a pattern, or raise."""
    parts = _split(text)
    if isinstance(parts, str):
        raise _bad("resource pattern", text, parts, _PATTERN_HINT)
    scheme, rooted, raw_path = parts
    unescaped = _unescape(raw_path)
    if isinstance(unescaped, str):
        raise _bad("resource pattern", text, unescaped, _PATTERN_HINT)
    literal_path, first_meta = unescaped
    checked = raw_path if first_meta is not None else literal_path
    if checked or not rooted:
        for segment in checked.split("/"):
            problem = _segment_problem(segment)
            if problem is not None:
                raise _bad("resource pattern", text, problem, _PATTERN_HINT)
    head = f"{scheme}://" + ("/" if rooted else "")
    if first_meta is None:
        return True, scheme, rooted, head + literal_path, "", None
    prefix = head + literal_path[:first_meta]
    return False, scheme, rooted, prefix, _raw_tail(raw_path), _compile(text, raw_path)


def _raw_tail(raw_path: str) -> str:
    escaped = False
    for index, char in enumerate(raw_path):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _META:
            return raw_path[index:]
    return ""


def _compile(text: str, raw_path: str) -> re.Pattern[str]:
    if raw_path != raw_path.rstrip():
        # gitignore trims trailing spaces; a pattern must mean exactly what it says.
        raise _bad("resource pattern", text, "a glob ends in whitespace", _PATTERN_HINT)
    if raw_path == "**":
        return re.compile(r".+", re.DOTALL)
    glob = "/" + raw_path  # anchored: never gitignore's "match at any depth"
    if glob.endswith("/**"):
        # gitignore's trailing "/**" regex is a prefix match; "/**/*" is the same set of
        # descendants written so that re.fullmatch works.
        glob += "/*"
    try:
        regex, include = GitIgnoreBasicPattern.pattern_to_regex(glob)
    except (GitIgnorePatternError, ValueError) as exc:
        raise _bad("resource pattern", text, f"bad glob ({exc})", _PATTERN_HINT) from exc
    if regex is None or include is not True:
        raise _bad("resource pattern", text, "the glob matches nothing", _PATTERN_HINT)
    return re.compile(regex, re.DOTALL)
