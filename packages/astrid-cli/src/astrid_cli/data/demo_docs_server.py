"""A small MCP server for `astrid demo`, written with the official `mcp` SDK.

It answers searches over a team style guide. The demo's scripted agent calls it like any MCP
tool: the call is approved, audited, and the server runs under the Landlock launcher.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

GUIDE = {
    "greeting": "Greetings end with an exclamation mark and spell the name as given.",
    "logs": "Build logs are regenerated; never commit them.",
    "dependencies": "System packages are installed by a person, never by the agent.",
}

server = MCPServer("docs")


@server.tool(description="Search the team's style guide.")
def search_docs(query: str) -> str:
    hits = [f"{topic}: {rule}" for topic, rule in GUIDE.items() if query.lower() in topic]
    return "\n".join(hits) or f"no style-guide entry about {query!r}"


if __name__ == "__main__":
    server.run("stdio")
