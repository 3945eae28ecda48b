"""docs-mcp: a small MCP server, written with the official `mcp` SDK, that answers questions
from the Markdown files shipped next to it in ``docs/``.

Astrid runs it as an untrusted, sandboxed stdio server: its working directory is the installed
capsule, which the sandbox lets it read, and nothing else of the machine's files beyond the
Python it runs on. So the server only ever reads its own ``docs/``, and refuses names that
would leave it.

Run by hand: ``python3 server.py`` (speaks MCP on stdin/stdout).
"""

from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver import MCPServer

DOCS = Path(__file__).resolve().parent / "docs"
MAX_HITS = 20

server = MCPServer("docs", instructions="Search and read the bundled Astrid capsule docs.")


def _documents() -> dict[str, Path]:
    return {path.stem: path for path in sorted(DOCS.glob("*.md"))}


@server.tool(description="List the documents this server can read.")
def list_docs() -> str:
    return "\n".join(_documents())


@server.tool(
    description="Search the documents for a word or phrase (case-insensitive); returns "
    "matching lines as 'document:line: text'."
)
def search_docs(query: str) -> str:
    needle = query.strip().lower()
    if not needle:
        return "give a word or phrase to search for"
    hits: list[str] = []
    for name, path in _documents().items():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if needle in line.lower():
                hits.append(f"{name}:{number}: {line.strip()}")
                if len(hits) == MAX_HITS:
                    return "\n".join([*hits, f"(stopped at {MAX_HITS} matches)"])
    return "\n".join(hits) if hits else f"no document mentions {query!r}"


@server.tool(description="Return one document in full, by the name list_docs gives.")
def read_doc(name: str) -> str:
    # Looked up among the listed names, never joined onto a path: "../x" is just unknown.
    path = _documents().get(name)
    if path is None:
        return f"no document named {name!r}; list_docs shows the names"
    return path.read_text(encoding="utf-8")


if __name__ == "__main__":
    server.run("stdio")
