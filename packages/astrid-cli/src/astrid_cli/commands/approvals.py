"""``astrid approvals``: answer what waits for a person, from any terminal.

Approvals are asked by the daemon for every session: the agent's, and those of MCP clients
behind ``astrid mcp serve`` (which have no chat of their own). This command subscribes to all
sessions, shows each live question as ``astrid chat`` does, and also offers the deferred ones
(asked while nobody was there); an answer to a deferred one is applied as usual (an "allow
always" becomes a grant the next call uses).
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .._support import emit_json, run_async, with_client

_OPTIONS = ("allow_once", "allow_session", "allow_workspace", "allow_always", "deny")


@click.command()
@click.option("--list", "list_only", is_flag=True, help="Print the deferred approvals and exit.")
@click.option(
    "--auto",
    type=click.Choice(_OPTIONS),
    default=None,
    help="Answer every question with this option, without asking (scripts, tests).",
)
@click.option("--once", is_flag=True, help="Answer what is waiting now, then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print JSON.")
@click.pass_context
def approvals(
    ctx: click.Context, list_only: bool, auto: str | None, once: bool, as_json: bool
) -> None:
    """Watch for approval questions from every session and answer them.

    \b
    Examples:
      astrid approvals            # watch; answer each question as it comes (Ctrl-C to stop)
      astrid approvals --list     # what was deferred because nobody answered in time
      astrid approvals --once     # answer the deferred ones, then exit
    """
    if list_only:
        rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listDeferred"))
        if as_json:
            emit_json(rows)
        elif not rows:
            click.echo("nothing is waiting for approval")
        else:
            for row in rows:
                request = row["request"]
                click.echo(f"{request['request_id']}  {request.get('summary', '')}")
        return

    async def go() -> None:
        from astrid_gateway.protocol import ApprovalNeeded, DeferredApprovals

        from .._support import connected
        from .._turns import auto_answer
        from .._ui import Answer, ChatUI

        ui = ChatUI(markdown=False)

        async def decide(request: dict[str, Any]) -> Answer:
            if auto is not None:
                offered = request.get("options") or [auto]
                return Answer(auto_answer(auto, list(offered)), by="the --auto flag")
            return await ui.ask_approval_async(request)

        async def answer(client: Any, request: dict[str, Any]) -> None:
            choice = await decide(request)
            try:
                await client.call(
                    "approvalResponse",
                    request_id=request["request_id"],
                    option=choice.option,
                    reason=choice.reason,
                )
                click.echo(f"{request.get('summary', '')}: {choice.option}")
            except Exception as exc:  # answered elsewhere first: say so and go on
                click.echo(f"{request.get('summary', '')}: already resolved ({exc})")

        async with connected(ctx) as client:
            await client.subscribe()
            if once:
                for row in await client.call("listDeferred"):
                    await answer(client, row["request"])
                return
            click.echo("watching for approvals (Ctrl-C to stop)", err=True)
            async for event in client.events():
                match event:
                    case ApprovalNeeded(request=request):
                        await answer(client, request.model_dump(mode="json"))
                    case DeferredApprovals(items=items):
                        for item in items:
                            await answer(client, item["request"])  # pyright: ignore[reportArgumentType]
                    case _:
                        pass

    with contextlib.suppress(KeyboardInterrupt):
        run_async(go)


__all__ = ["approvals"]
