"""asyncq dead-letters: inspect and recover the items that could not be processed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from asyncq.cli.connection import Connection, connection_options
from asyncq.cli.runner import fail, run
from asyncq.core.envelope import DeadLetter
from asyncq.tools import deadletters
from asyncq.tools.layout import dead_letters_view

dead_letters_app = typer.Typer(no_args_is_help=True, help="Inspect and recover dead letters.")


@dead_letters_app.command("list")
@connection_options()
def dead_list(
    conn: Connection,
    limit: Annotated[int, typer.Option("--limit", min=0, metavar="N", help="Newest N only (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="JSON lines, for scripts.")] = False,
) -> None:
    """List dead letters, newest first: id, time, reason and the item's payload."""

    async def go() -> list[DeadLetter | bytes]:
        client = await conn.client()
        try:
            return await deadletters.read(client, conn.queue, limit)
        finally:
            await client.aclose()

    letters = run(go(), url=conn.url)
    if as_json:
        for letter in letters:
            if isinstance(letter, DeadLetter):
                record = {k: getattr(letter, k) for k in ("id", "reason", "failed_at", "consumer", "envelope")}
            else:
                record = {"unreadable": letter.decode("utf-8", "replace")}
            typer.echo(json.dumps(record))
        return
    Console().print(dead_letters_view(conn.queue, letters))


@dead_letters_app.command("requeue")
@connection_options()
def dead_requeue(
    conn: Connection,
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID...", help="Ids of the dead letters to requeue.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", metavar="", help="Requeue every dead letter.")] = False,
) -> None:
    """Put dead letters back at the end of the line with their attempts reset."""
    if not all_ and not ids:
        raise typer.BadParameter("name the ids to requeue, or pass --all")

    async def go() -> deadletters.RequeueResult:
        client = await conn.client()
        try:
            return await deadletters.requeue(client, conn.queue, None if all_ else ids)
        finally:
            await client.aclose()

    result = run(go(), url=conn.url)
    typer.echo(f"requeued {len(result.requeued)} item(s)")
    if result.not_envelopes:
        typer.echo(
            f"not requeued, kept as dead letters (not asyncq envelopes; see dead-letters list --json): "
            f"{' '.join(result.not_envelopes)}",
            err=True,
        )
    if result.not_found:
        raise fail(f"no dead letter with id: {' '.join(result.not_found)}")


@dead_letters_app.command("purge")
@connection_options()
def dead_purge(
    conn: Connection,
    yes: Annotated[bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every dead letter of the queue."""
    if not yes and not typer.confirm(f"Delete every dead letter of queue {conn.queue}?"):
        raise typer.Exit(1)

    async def go() -> int:
        client = await conn.client()
        try:
            return await deadletters.purge(client, conn.queue)
        finally:
            await client.aclose()

    typer.echo(f"purged {run(go(), url=conn.url)} dead letter(s)")
