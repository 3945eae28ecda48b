"""``astrid policy check/apply/list/revoke`` against a real daemon on a real store
(subprocesses): tokens are minted by the daemon, carry the audit id of the ``policy apply``
entry, and a second apply replaces the first one's tokens."""

from __future__ import annotations

import json
from pathlib import Path

from .test_basic_commands import astrid

EXAMPLES = Path(__file__).parents[3] / "examples" / "policies"

GOOD = """\
version = 1

[[grant]]
name = "team mail"
mcp = "mail/send_email"
caveats = [{ each_in = "recipients", values = ["alice@example.com", "bob@example.com"] }]
max_calls = 2
"""


def test_check_shows_each_grant_with_examples() -> None:
    out = astrid(
        Path("/nonexistent-home"), "policy", "check", str(EXAMPLES / "mail-assistant.toml")
    )
    assert out.returncode == 0, out.stderr
    assert "grant 'mail the summary to the team' (line 21)" in out.stdout
    assert "`recipients` contains `someone-else@evil.test`, outside the 2 allowed" in out.stdout
    assert "is valid" in out.stdout


def test_check_names_the_line_and_the_fix(tmp_path: Path) -> None:
    cases = {
        'version = 1\n\n[[grant]]\nname = "x"\nmcp = "filesystem:read_file"\n': (
            "line 5",
            "filesystem/read_file",
        ),
        '[[grant]]\nname = "x"\nmcp = "a/b"\ncaveats = [{ range = "n", lo = "ten" }]\n': (
            "line 4",
            "lo = 100",
        ),
        '[[grant]]\nname = "x"\nmcp = "a/b"\nmax_call = 3\n': ("line 4", "max_calls"),
    }
    for text, (line, fix) in cases.items():
        path = tmp_path / "policy.toml"
        path.write_text(text)
        out = astrid(tmp_path, "policy", "check", str(path))
        assert out.returncode == 1, text
        assert line in out.stderr, out.stderr
        assert fix in out.stderr, out.stderr


def test_apply_list_replace_and_revoke_through_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    first = tmp_path / "first.toml"
    first.write_text(GOOD)
    try:
        applied = astrid(home, "policy", "apply", str(first), "--json")
        assert applied.returncode == 0, applied.stderr
        result = json.loads(applied.stdout)
        [token] = result["tokens"]
        assert token["resource"] == "mcp://mail/send_email"
        assert token["approval_audit_id"] == result["audit_id"]  # the apply, not an invention
        assert {c["type"] for c in token["caveats"]} == {"each_in", "max_calls"}
        listed = json.loads(astrid(home, "policy", "list", "--json").stdout)
        assert [(r["grant"], r["status"]) for r in listed["tokens"]] == [("team mail", "valid")]
        # a second apply replaces the first one's tokens
        second = tmp_path / "second.toml"
        second.write_text("strict = true\n" + GOOD.replace("team mail", "team mail v2"))
        replaced = json.loads(astrid(home, "policy", "apply", str(second), "--json").stdout)
        assert replaced["revoked"] == [token["id"]]
        tokens = {
            r["id"]: r["status"]
            for r in json.loads(astrid(home, "tokens", "list", "--all", "--json").stdout)
        }
        assert tokens[token["id"]] == "revoked"
        assert tokens[replaced["tokens"][0]["id"]] == "valid"
        listed = json.loads(astrid(home, "policy", "list", "--json").stdout)
        assert listed["settings"]["strict"] is True
        revoked = astrid(home, "policy", "revoke", "--grant", "team mail v2")
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked 1 token(s) of team mail v2" in revoked.stdout
        missing = astrid(home, "policy", "revoke", "--grant", "nope")
        assert missing.returncode != 0
        assert "astrid policy list" in missing.stderr
    finally:
        astrid(home, "daemon", "stop")
