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
    from marconi.runs import sweep_dead_builders

    sweep_dead_builders(c.checked_engine())  # runs left 'building' by a killed job are marked failed
    with c.engine.connect() as conn:
        echo_json({"counts": counts(conn), "runs": list_runs(conn, 10)})
