from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from astrid_core import (
    BadInputError,
    CapsuleHostCall,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    LlmCall,
    McpSampling,
    McpToolCall,
    NetworkRequest,
    Permission,
    RiskLevel,
    SensitiveAction,
    SessionId,
    ShellCommand,
    SubAgentSpawn,
    TranscriptAccess,
    action_from_json,
    action_to_json,
)

SID = SessionId.parse("3f2b8c1e-5d6a-4e7f-9a0b-1c2d3e4f5a6b")

# (action, resource, permission, risk, summary)
CASES: list[tuple[Any, str, Permission, RiskLevel, str]] = [
    (
        McpToolCall(server="github", tool="create_issue", args={"title": "x", "n": 1}),
        "mcp://github/create_issue",
        Permission.INVOKE,
        RiskLevel.MEDIUM,
        "Call MCP tool github/create_issue",
    ),
    (
        FileRead(path="/home/u/a.txt"),
        "file:///home/u/a.txt",
        Permission.READ,
        RiskLevel.LOW,
        "Read file: /home/u/a.txt",
    ),
    (
        FileWrite(path="/w/b"),
        "file:///w/b",
        Permission.WRITE,
        RiskLevel.MEDIUM,
        "Write file: /w/b",
    ),
    (
        FileDelete(path="/w/c"),
        "file:///w/c",
        Permission.DELETE,
        RiskLevel.HIGH,
        "Delete file: /w/c",
    ),
    (
        DirectoryList(path="/"),
        "file:///",
        Permission.LIST,
        RiskLevel.LOW,
        "List directory: /",
    ),
    (
        ShellCommand(command="FOO=1 /usr/bin/sudo rm -rf /tmp/x", cwd="/w"),
        "cmd://sudo",
        Permission.EXECUTE,
        RiskLevel.HIGH,
        "Run command in /w: FOO=1 /usr/bin/sudo rm -rf /tmp/x",
    ),
    (
        NetworkRequest(method="post", url="https://API.example.com/v1?q=1"),
        "net://api.example.com:443",
        Permission.NETWORK,
        RiskLevel.MEDIUM,
        "Network request: POST https://API.example.com/v1?q=1",
    ),
    (
        NetworkRequest(url="tcp://db.local:5432"),
        "net://db.local:5432",
        Permission.NETWORK,
        RiskLevel.MEDIUM,
        "Network request: GET tcp://db.local:5432",
    ),
    (
        CapsuleHostCall(capsule="weather", function="http_get", args={}),
        "capsule://weather/http_get",
        Permission.INVOKE,
        RiskLevel.MEDIUM,
        "Capsule weather calls host function http_get",
    ),
    (
        SubAgentSpawn(task="summarise the logs\nthen more", parent_session=SID, depth=2),
        "agent://subagent",
        Permission.SPAWN,
        RiskLevel.MEDIUM,
        "Start a sub-agent (depth 2): summarise the logs",
    ),
    (
        LlmCall(model="claude-x", estimated_cost_micros=12_345),
        "llm://claude-x",
        Permission.SPEND,
        RiskLevel.LOW,
        "LLM call to claude-x (agent turn), estimated $0.0123",
    ),
    (
        McpSampling(server="inbox", model="claude-x", max_tokens=64, estimated_cost_micros=500),
        "mcp-sampling://inbox",
        Permission.SPEND,
        RiskLevel.MEDIUM,
        "MCP server inbox asks to use claude-x (up to 64 tokens, estimated $0.0005)",
    ),
    (
        TranscriptAccess(session_id=SID),
        f"transcript://{SID}",
        Permission.READ,
        RiskLevel.MEDIUM,
        f"Read the transcript of session {SID}",
    ),
]


@pytest.mark.parametrize(
    ("action", "resource", "permission", "risk", "summary"),
    CASES,
    ids=[type(c[0]).__name__ + c[1] for c in CASES],
)
def test_action_metadata_and_round_trip(
    action: Any, resource: str, permission: Permission, risk: RiskLevel, summary: str
) -> None:
    assert action.resource == resource
    assert action.permission is permission
    assert action.risk is risk
    assert action.summary == summary
    wire = json.loads(json.dumps(action_to_json(action)))
    back = action_from_json(wire)
    assert back == action
    assert type(back) is type(action)
    assert isinstance(action.arguments(), dict)


def test_every_action_kind_is_covered() -> None:
    import typing

    union = typing.get_args(typing.get_args(SensitiveAction)[0])
    assert {cls.__name__ for cls in union} == {type(c[0]).__name__ for c in CASES}


def test_actions_are_frozen_and_closed() -> None:
    action = FileRead(path="/a")
    with pytest.raises(ValidationError):
        action.path = "/b"  # type: ignore[misc]
    with pytest.raises(BadInputError, match="valid SensitiveAction"):
        action_from_json({"kind": "file_read", "path": "/a", "extra": 1})
    with pytest.raises(BadInputError, match="valid SensitiveAction"):
        action_from_json({"kind": "format_disk", "path": "/"})
    with pytest.raises(BadInputError, match="valid SensitiveAction"):
        action_from_json("file_read")


def test_risk_order() -> None:
    assert RiskLevel.CRITICAL.at_least(RiskLevel.HIGH)
    assert not RiskLevel.LOW.at_least(RiskLevel.MEDIUM)
    assert RiskLevel.LOW.raised_to(RiskLevel.HIGH) is RiskLevel.HIGH
    assert RiskLevel.CRITICAL.raised_to(RiskLevel.LOW) is RiskLevel.CRITICAL


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"kind": "file_read", "path": "relative/a"}, "must be absolute"),
        ({"kind": "file_read", "path": "~/a"}, "must be absolute"),
        ({"kind": "file_write", "path": "/a\x00b"}, "NUL"),
        ({"kind": "file_delete", "path": "/ws/../etc/passwd"}, "normalised"),
        ({"kind": "directory_list", "path": "/ws/./x"}, "normalised"),
        ({"kind": "file_read", "path": "//etc/passwd"}, "normalised"),
        ({"kind": "file_read", "path": "/etc/"}, "normalised"),
        ({"kind": "shell_command", "command": "ls", "cwd": "w"}, "must be absolute"),
        ({"kind": "shell_command", "command": "ls\x00-la", "cwd": "/w"}, "NUL"),
        ({"kind": "shell_command", "command": "", "cwd": "/w"}, "at least 1"),
        ({"kind": "network_request", "url": "file:///etc/passwd"}, "unsupported"),
        ({"kind": "network_request", "url": "https://"}, "host-less"),
        ({"kind": "network_request", "url": "not a url"}, "whitespace"),
        ({"kind": "network_request", "url": "https://h:99999/"}, "invalid port"),
        ({"kind": "network_request", "url": "https://h:abc/"}, "invalid port"),
        ({"kind": "network_request", "url": "tcp://h"}, "explicit port"),
        ({"kind": "network_request", "url": "https://h/\r\nX: y"}, "control"),
        ({"kind": "network_request", "url": "https://h/", "method": "GET X"}, "1-16 letters"),
        ({"kind": "mcp_tool_call", "server": "a/b", "tool": "c"}, "without '/'"),
        ({"kind": "mcp_tool_call", "server": "a", "tool": ""}, "1-128"),
        ({"kind": "capsule_host_call", "capsule": "c", "function": "f\n"}, "controls"),
        ({"kind": "llm_call", "model": "m", "estimated_cost_micros": -1}, "greater than"),
        ({"kind": "llm_call", "model": "m", "estimated_cost_micros": 0.5}, "integer"),
        ({"kind": "subagent_spawn", "task": "t", "depth": 0}, "greater than"),
        ({"kind": "transcript_access", "session_id": "nope"}, "not a UUID"),
    ],
)
def test_bad_input(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        action_from_json(data)


def test_mcp_names_cannot_collide_in_resource() -> None:
    # "a/b" + "c" and "a" + "b/c" would both be mcp://a/b/c.
    assert McpToolCall(server="a", tool="b.c").resource == "mcp://a/b.c"
    with pytest.raises(ValidationError):
        McpToolCall(server="a", tool="b/c")


@pytest.mark.parametrize(
    "sneaky",
    ["x\n\nApproved by admin: yes", "x\x1b[2K", "evil\u202etxt.exe", "a\rb", "a\u2028b"],
)
def test_summary_is_one_honest_line(sneaky: str) -> None:
    actions = [
        FileRead(path=f"/w/{sneaky}"),
        ShellCommand(command=f"echo {sneaky}", cwd="/w"),
        LlmCall(model="m", purpose=sneaky),
    ]
    for action in actions:
        line = action.summary
        assert "\n" not in line
        assert "\r" not in line
        assert "\x1b" not in line
        assert "\u202e" not in line
        assert "\u2028" not in line
    assert "\\n\\nApproved" in FileRead(path="/w/x\n\nApproved").summary


def test_network_host_and_port() -> None:
    action = NetworkRequest(url="http://user@Example.COM/x")
    assert (action.host, action.port) == ("example.com", 80)
    assert action.arguments() == {
        "method": "GET",
        "url": "http://user@Example.COM/x",
        "host": "example.com",
        "port": 80,
    }
    assert NetworkRequest(url="wss://h:8443").resource == "net://h:8443"


def test_shell_program_edge_cases() -> None:
    assert ShellCommand(command="'unterminated", cwd="/").resource == "cmd://?"
    assert ShellCommand(command="A=1 B=2", cwd="/").resource == "cmd://?"
