"""``[[cron]]`` in Capsule.toml: a valid 5-field schedule and an action naming one of the
capsule's own ``[[tool]]`` entries, or a line-accurate error naming the job."""

from __future__ import annotations

import pytest

from astrid_capsule.manifest import ManifestError, parse_manifest

HEAD = """[package]
name = "notes"
version = "0.1.0"

[[tool]]
name = "summarize"
description = "Summarize the notes"
export = "summarize"
"""


def with_cron(*entries: tuple[str, str, str]) -> str:
    return HEAD + "".join(
        f'\n[[cron]]\nname = "{name}"\nschedule = "{schedule}"\naction = "{action}"\n'
        for name, schedule, action in entries
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    return info.value.problems


@pytest.mark.parametrize(
    "schedule",
    ["0 * * * *", "*/15 9-17 * * MON-FRI", "30 2 1 * *", "0 0 29 2 *", "5 4 * * sun"],
)
def test_valid_schedules_parse(schedule: str) -> None:
    [job] = parse_manifest(with_cron(("nightly", schedule, "summarize"))).cron
    assert (job.name, job.schedule, job.action) == ("nightly", schedule, "summarize")


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("61 * * * *", "is not a valid cron expression: Bad minute"),
        ("0 25 * * *", "is not a valid cron expression: Bad hour"),
        ("0 0 30 2 *", "is not a valid cron expression: Bad day-of-month"),
        ("every hour", "has 2 fields; a schedule has 5: minute hour"),
        ("0 0 * * * *", "has 6 fields"),  # cronsim's seconds field is not part of the format
        ("@hourly", "has 1 fields"),
    ],
)
def test_a_bad_schedule_names_the_line_the_job_and_the_problem(schedule: str, problem: str) -> None:
    # One valid job first, so the error must point at the second entry's line, not the first.
    text = with_cron(("hourly", "0 * * * *", "summarize"), ("nightly", schedule, "summarize"))
    line = text.splitlines().index(f'schedule = "{schedule}"') + 1
    [message] = problems(text)
    assert message.startswith(f"Capsule.toml:{line}: cron.1.schedule: ")
    assert f"cron job 'nightly': schedule {schedule!r} {problem}" in message


def test_the_action_must_name_a_tool_of_the_capsule() -> None:
    text = with_cron(("nightly", "0 3 * * *", "sumarize"))
    line = text.splitlines().index('action = "sumarize"') + 1
    [message] = problems(text)
    assert message.startswith(f"Capsule.toml:{line}: cron.0.action: ")
    assert "cron job 'nightly': action 'sumarize' is not a [[tool]] of this capsule" in message
    assert "(did you mean 'summarize'?); its tools: summarize" in message


def test_a_capsule_without_tools_cannot_schedule_anything() -> None:
    text = '[package]\nname = "x"\nversion = "0.1.0"\n' + with_cron(
        ("nightly", "0 3 * * *", "sync")
    ).removeprefix(HEAD)
    [message] = problems(text)
    assert "action 'sync' is not a [[tool]] of this capsule; it has no [[tool]]" in message


def test_job_names_are_unique_and_plain() -> None:
    text = with_cron(("nightly", "0 3 * * *", "summarize"), ("nightly", "0 4 * * *", "summarize"))
    [message] = problems(text)
    assert "cron.1.name" in message
    assert "cron job 'nightly' is defined twice" in message
    [message] = problems(with_cron(("night ly/../x", "0 3 * * *", "summarize")))
    assert "cron.0.name: String should match pattern" in message


def test_every_cross_check_problem_is_reported_at_once() -> None:
    text = with_cron(
        ("a", "0 * * * *", "missing"), ("a", "0 * * * *", "summarize"), ("b", "0 * * * *", "x")
    )
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["cron.0.action", "cron.1.name", "cron.2.action"]


def test_a_dotted_action_names_a_tool_by_its_last_segment_or_a_component_export() -> None:
    [job] = parse_manifest(with_cron(("sync", "0 * * * *", "astrid.notes.summarize"))).cron
    assert (job.dotted, job.target) == (True, "summarize")
    # Seed 001's style: no [[tool]], the component's export of that name.
    seed = (
        '[package]\nname = "github-agent"\nversion = "1.0.0"\n\n[component]\n'
        'entrypoint = "bin/github_agent.wasm"\n\n[[cron]]\nname = "sync-issues"\n'
        'schedule = "0 * * * *"\naction = "astrid.github.sync"\n'
    )
    [job] = parse_manifest(seed).cron
    assert job.target == "sync"
    # Without a component there is nothing to call.
    no_component = seed.replace('[component]\nentrypoint = "bin/github_agent.wasm"\n', "")
    [message] = problems(no_component)
    assert "names neither a [[tool]] 'sync' nor an export of a [component]" in message


@pytest.mark.parametrize("action", ["astrid..sync", ".sync", "sync.", "a b", "x/../y", "a.b;c"])
def test_a_malformed_action_is_refused(action: str) -> None:
    [message] = problems(with_cron(("nightly", "0 3 * * *", action)))
    assert "cron.0.action" in message
