"""Every known secret shape is redacted; ordinary text is left alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_audit import SECRET_PATTERNS, Redactor

SAMPLES = {
    "anthropic_key": "sk-ant-api03-" + "A" * 40,
    "openai_key": "sk-proj-" + "b" * 40,
    "github_token": "ghp_" + "c" * 36,
    "slack_token": "xoxb-1234567890-abcdefghij",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "telegram_bot_token": "123456789:AAE" + "x" * 32,
    "bearer": "Bearer abcdefghijklmnop.qrstuv",
    "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"
    "-----END OPENSSH PRIVATE KEY-----",
    "google_api_key": "AIza" + "d" * 35,
}


def test_every_pattern_has_a_sample() -> None:
    assert {name for name, _ in SECRET_PATTERNS} == set(SAMPLES)


@pytest.mark.parametrize(("name", "secret"), sorted(SAMPLES.items()))
def test_pattern_is_redacted(name: str, secret: str) -> None:
    redactor = Redactor(b"salt")
    out = redactor.text(f"before {secret} after")
    assert secret not in out
    assert out.startswith("before [redacted:")
    assert out.endswith(" after")


def test_same_secret_same_marker_other_salt_other_marker() -> None:
    a, b = Redactor(b"one"), Redactor(b"two")
    assert a.marker("s3cret-value") == a.marker("s3cret-value")
    assert a.marker("s3cret-value") != b.marker("s3cret-value")


def test_secret_argument_names_and_declared_secrets() -> None:
    redactor = Redactor(b"salt", extra_secrets=["my-declared-secret-value"])
    out = redactor.value(
        {
            "password": "short1",
            "nested": {"api_key": "k-123456"},
            "msg": "x my-declared-secret-value y",
        }
    )
    assert out["password"].startswith("[redacted:")
    assert out["nested"]["api_key"].startswith("[redacted:")
    assert "my-declared" not in out["msg"]


def test_ordinary_text_untouched() -> None:
    text = "Delete file: /home/user/notes.txt (12345 bytes) at 2026-11-24 sk-short"
    assert Redactor(b"s").text(text) == text


_SAMPLES = [
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdef",
    "AKIAABCDEFGHIJKLMNOP",
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2Q",
    "123456789:" + "A" * 35,
    "Bearer abcdefghijklmnop",
    "BEARER abcdefghijklmnop",
    "AIza" + "B" * 35,
]


@given(
    st.text(max_size=40),
    st.sampled_from(_SAMPLES),
    st.text(max_size=40),
)
def test_the_one_scan_pre_check_never_skips_a_shape(prefix: str, secret: str, suffix: str) -> None:
    # Redactor.text returns early when the combined pattern finds nothing; it must find
    # everything the individual patterns find, or a secret would reach the log.
    text = f"{prefix} {secret} {suffix}"
    from astrid_audit._redact import _ANY_SHAPE  # pyright: ignore[reportPrivateUsage]

    if any(p.search(text) for _, p in SECRET_PATTERNS):
        assert _ANY_SHAPE.search(text)
    redacted = Redactor(b"salt").text(text)
    assert secret not in redacted
