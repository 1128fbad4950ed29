"""`marconi status`: the database, its schema, the kNN path, the serving model runs and what is loaded."""

from __future__ import annotations

import click

from marconi.cli.context import Ctx, echo_json, pass_ctx


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (the ten newest runs too).")
@pass_ctx
def status(c: Ctx, as_json: bool):
    """Where the database is, whether its schema is current, which kNN index serves, the serving model runs with
    their size and quality, and row counts. Runs left 'building' by a killed job are marked failed first."""
    from marconi.db import migrate
    from marconi.db.runs import json_ready, list_runs, serving_run
    from marconi.db.status import counts, database_bytes, knn_paths
    from marconi.runs import KINDS, sweep_dead_builders

    engine = c.engine  # not checked_engine(): an outdated schema is reported here, not refused
    current, head = migrate.revisions(engine)
    report = {"database": _where(c), "schema": {"revision": current, "head": head}}
    if migrate.outdated(current) is not None:
        report["schema"]["action"] = "run `marconi db upgrade`"
        _print(report, as_json)
        raise click.exceptions.Exit(1)
    sweep_dead_builders(engine)
    with engine.connect() as conn:
        report |= {"database_bytes": database_bytes(conn), "knn": knn_paths(conn), "counts": counts(conn),
                   "serving": {kind: json_ready(serving_run(conn, kind)) for kind in KINDS}}
        if as_json:
            report["runs"] = [json_ready(r) for r in list_runs(conn, 10)]
    _print(report, as_json)


def _where(c: Ctx) -> str:
    """The database, password hidden: the embedded server's folder, or DATABASE_URL."""
    from marconi.db import hide_password

    if not c.config.database_url:
        return f"embedded PostgreSQL in {c.config.pgdata}"
    return hide_password(c.config.database_url)


def _print(report: dict, as_json: bool) -> None:
    """Echo the report as JSON or as a short table for people."""
    if as_json:
        echo_json(report)
        return
    schema = report["schema"]
    rows = [("database", report["database"]),
            ("schema", f"{schema['revision'] or 'empty'} (newest {schema['head']})"
                       + (f": {schema['action']}" if "action" in schema else ", current"))]
    if "knn" in report:
        knn = report["knn"]
        rows += [("database size", f"{report['database_bytes'] / 2**20:,.0f} MiB"),
                 ("kNN", f"songs: {knn['songs']}; images: {knn['images']}; pgvector "
                         f"{knn['pgvector'] or 'not installed (exact cube search serves)'}")]
        rows += [(f"{kind} model", _describe(run)) for kind, run in report["serving"].items()]
        rows += [("loaded", ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in report["counts"].items()))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def _describe(run: dict | None) -> str:
    """One line for a serving run: id, model, size and the quality its build measured."""
    if run is None:
        return "none serving"
    metrics = run.get("metrics") or {}
    quality = ""
    if "leave_one_out" in metrics and metrics["leave_one_out"].get("P@1") is not None:
        loo = metrics["leave_one_out"]
        quality = f", leave-one-out P@1 {loo['P@1']:.3f}, P@10 {loo['P@10']:.3f}"
    return (f"run {run['id']} ({run['model']}): {run['n_vectors'] or 0:,} vectors of {run['dims']} dims, "
            f"since {run['finished_at'][:16].replace('T', ' ')}{quality}")
