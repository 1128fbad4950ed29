"""`marconi status`: what is loaded and which model runs serve."""

from __future__ import annotations

import click

from marconi.cli.context import Ctx, echo_json, pass_ctx


@click.command()
@pass_ctx
def status(c: Ctx):
    """What is loaded and which model runs serve (the ten newest runs)."""
    from marconi.db.runs import list_runs
    from marconi.db.status import counts

    with c.checked_engine().connect() as conn:
        echo_json({"counts": counts(conn), "runs": list_runs(conn, 10)})
