"""How values read to a person: dollars with cents, local times, short ids, no Python reprs.

Every ``--json`` output keeps the raw values (micro-dollars, epoch seconds, full ids); only the
human output goes through these functions. They take plain JSON values, so each is a small
pure function with a unit test.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "allowance_lines",
    "audit_lines",
    "budget_lines",
    "config_value",
    "local_time",
    "match_session",
    "money",
    "parse_session_id",
    "plain",
    "resolve_session",
    "short_id",
    "shorten",
    "status_lines",
]


def money(micros: Any) -> str:
    """Micro-dollars as dollars with cents (``$1.25``); below a cent, four decimals so that
    a small spend never reads as ``$0.00``."""
    amount = int(micros or 0) / 1_000_000
    if amount and abs(amount) < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def local_time(value: Any) -> str:
    """Epoch seconds or an ISO-8601 time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` if absent."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(float(value), UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short_id(value: Any) -> str:
    """The first 8 characters of an id (enough to tell sessions apart and to type back)."""
    text = str(value or "")
    return text[:8] if len(text) > 8 else text


def shorten(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, cut between words (never inside
    one) with an ellipsis; a single word longer than ``width`` is cut with the ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    head = flat[: max(1, width - 1)]
    cut = head.rfind(" ")
    if cut > 0:  # between words, however early; only a single over-long word is cut inside
        head = head[:cut]
    return head.rstrip(" ,;:") + "…"


def plain(value: Any) -> str:
    """A value as a person reads it (TOML spelling: true/false, lists in brackets)."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def config_value(key: str, value: Any) -> str:
    """``plain`` plus a gloss for amounts in micro-dollars (``5000000 ($5.00)``)."""
    text = plain(value)
    if key.endswith("_micros") and isinstance(value, int) and not isinstance(value, bool):
        text += f" ({money(value)})"
    return text


def budget_lines(budget: dict[str, Any]) -> list[str]:
    spent = int(budget.get("spent_micros") or 0)
    reserved = int(budget.get("reserved_micros") or 0)
    limit = budget.get("session_limit_micros")
    lines = [
        f"spent {money(spent)} of {money(limit)} for this session"
        if limit
        else f"spent {money(spent)} (no session limit)"
    ]
    if limit:
        left = max(0, int(limit) - spent - reserved)
        lines.append(f"left {money(left)} ({100 * spent // max(1, int(limit))}% used)")
    if reserved:
        lines.append(f"reserved {money(reserved)} for calls still running")
    if budget.get("per_action_limit_micros"):
        lines.append(f"at most {money(budget['per_action_limit_micros'])} per action")
    if budget.get("warn_at_percent"):
        lines.append(f"warns at {budget['warn_at_percent']}% of the limit")
    if budget.get("workspace_limit_micros"):
        ws_spent = money(budget.get("workspace_spent_micros") or 0)
        lines.append(f"workspace: spent {ws_spent} of {money(budget['workspace_limit_micros'])}")
    return lines


def allowance_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each standing allowance in the words the approval prompt used when it was granted."""
    if not rows:
        return ["no standing allowances: every action the policy asks about is asked"]
    from astrid_approval import Allowance, describe_allowance

    lines: list[str] = []
    for row in rows:
        try:
            text = describe_allowance(Allowance.from_json(row))
        except Exception:
            text = f"{row.get('scope', '?')}: {row.get('resource', '?')}"
        since = local_time(row.get("created_at"))
        lines.append(f"{short_id(row.get('id'))}  since {since}  {text}")
    return lines


def audit_lines(entries: list[dict[str, Any]], width: int = 100) -> list[str]:
    if not entries:
        return ["no audit entries yet"]
    lines: list[str] = []
    for entry in entries:
        outcome = entry.get("outcome") or {}
        action = (entry.get("action") or {}).get("kind", "-")
        when = local_time(entry.get("timestamp"))
        head = f"#{entry.get('seq', '?'):<5} {when}  {outcome.get('kind', '?'):<20} {action:<16} "
        reason = shorten(str(outcome.get("reason") or ""), max(20, width - len(head)))
        lines.append(head + reason)
    return lines


def status_lines(status: dict[str, Any], prefix: str = "") -> list[str]:
    """``astrid.status`` as ``key  value`` lines: nested objects flattened to dotted keys,
    lists of names joined, lists of records one indented line each."""
    lines: list[str] = []
    for key, value in sorted(status.items()):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += status_lines(value, f"{name}.")  # pyright: ignore[reportUnknownArgumentType]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{name:<30} {len(value)}")  # pyright: ignore[reportUnknownArgumentType]
            for item in value:  # pyright: ignore[reportUnknownVariableType]
                fields = ", ".join(f"{k}={plain(v)}" for k, v in item.items())  # pyright: ignore
                lines.append(f"  - {fields}")
        elif isinstance(value, list):
            lines.append(f"{name:<30} {'; '.join(map(plain, value)) or 'none'}")  # pyright: ignore
        elif key.endswith("_seconds") and isinstance(value, float):
            lines.append(f"{name:<30} {value:.1f} s")
        else:
            lines.append(f"{name:<30} {plain(value)}")
    return lines


def parse_session_id(text: str) -> str | None:
    """The canonical form of a full session id, or ``None`` if ``text`` is not one."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


_PREFIX = re.compile(r"[0-9a-fA-F]{4,}(-[0-9a-fA-F-]*)?")


def match_session(text: str, known: list[str]) -> str:
    """The session ``text`` names: a full id, or the start of exactly one known id (the
    8 characters ``astrid sessions list`` shows). Raises BadInputError/NotFoundError whose
    message names the problem in the user's terms (no validator internals)."""
    from astrid_core import BadInputError, NotFoundError

    full = parse_session_id(text)
    if full is not None:
        return full
    wanted = text.strip().lower()
    if not _PREFIX.fullmatch(wanted):
        raise BadInputError(
            f"{text!r} is not a session id",
            hint="use an id from `astrid sessions list` (its first 8 characters are enough)",
        )
    found = [k for k in known if k.lower().startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFoundError(
            f"no session id starts with {wanted!r}",
            hint="`astrid sessions list` shows the sessions there are",
        )
    raise BadInputError(
        f"{wanted!r} is the start of {len(found)} session ids: "
        + ", ".join(short_id(k) for k in found[:5]),
        hint="type more of the id",
    )


async def resolve_session(client: Any, text: str) -> str:
    """``match_session`` against the daemon's sessions (asked only for a short id)."""
    if parse_session_id(text) is not None:
        return str(parse_session_id(text))
    rows = await client.call("listSessions")
    return match_session(text, [str(row["session_id"]) for row in rows])
