"""`marconi demo`: the main job — a working service with the sample data in it, in one command."""

from __future__ import annotations

import click

from marconi.cli.context import Ctx


@click.command()
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--serve/--no-serve", "serve_", default=True, help="Start the web service at the end.")
@click.option("--images/--no-images", default=True, help="Also import and encode the Caltech-101 images.")
@click.option("--retrain", is_flag=True, help="Train and encode again even when models already serve.")
@click.pass_context
def demo(ctx, port, host, serve_, images, retrain):
    """Set up everything from the sample data and serve it.

    \b
    1. create/upgrade the schema (embedded PostgreSQL unless DATABASE_URL is set)
    2. split yes_small into training playlists and a 10% holdout ($MARCONI_HOME/datasets/yes_small)
    3. import the training playlists and train song2vec (skipped when a song model serves)
    4. import Caltech-101 and encode it with the configured encoder (skipped when an image model of that encoder serves)
    4b. learn a distance from photos 1-10 of each label and serve it (skipped when a learned one serves;
        photos 11-20 stay unseen queries for marconi eval images)
    5. serve the API and pages on http://HOST:PORT/
    Every step is idempotent: running the demo again only does what is missing.
    """
    from marconi.cli.serve import serve
    from marconi.db import migrate
    from marconi.db.status import songs_missing_hub_scores
    from marconi.evaluation.radio import split_yes
    from marconi.importers.playlists import import_playlists
    from marconi.runs import serving_run
    from marconi.training.song2vec import train_songs

    c: Ctx = ctx.obj
    cfg = c.config
    yes_src = cfg.require_data_dir() / "playlists" / "yes_small"
    if not yes_src.is_dir():
        raise click.ClickException(f"sample data not found at {yes_src}: set MARCONI_DATA_DIR to the folder "
                                   "holding playlists/ and images/")
    click.echo("==> schema")
    migrate.upgrade(c.engine)
    split = cfg.datasets_dir / "yes_small"
    if not (split / "holdout.txt").exists():
        click.echo(f"==> holding out 10% of yes_small playlists into {split}")
        split_yes(yes_src, split)
    click.echo("==> importing playlists")
    s = import_playlists(c.engine, split, "yes")
    click.echo(f"    {s.tracks} tracks, {s.playlists_seen} playlists ({s.inserted} new)")
    with c.engine.connect() as conn:
        songs_run = serving_run(conn, "songs")
        no_hubs = songs_missing_hub_scores(conn)  # vectors trained before migration 0005 lack them
    if songs_run is None or retrain or s.inserted or s.updated or no_hubs:
        click.echo("==> training song2vec")
        summary = train_songs(c.engine, config=c.config)
        click.echo(f"    model run {summary['run_id']}: {summary['vectors']} songs, {summary['dims']} dims")
    else:
        click.echo(f"==> song model run {songs_run['id']} already serving")
    if images:
        demo_images(c, retrain)
    click.echo(f"==> evaluate with: marconi eval radio --holdout {split / 'holdout.txt'}")
    if serve_:
        ctx.invoke(serve, host=host, port=port, workers=None, connections=None)


def demo_images(c: Ctx, retrain: bool) -> None:
    """Import Caltech-101 from the data dir and encode it, unless an image model already serves it."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images
    from marconi.runs import serving_run

    cfg = c.config
    src = cfg.require_data_dir() / "images" / "caltech101"
    if not src.is_dir():
        click.echo(f"==> {src} not found; skipping images")
        return
    click.echo("==> importing Caltech-101 images")
    s = import_images(c.engine, src, config=cfg)
    click.echo(f"    {s['inserted']} new, {s['duplicates']} already stored, {s['failed']} unreadable")
    with c.engine.connect() as conn:
        run = serving_run(conn, "images")
    without_words = run is not None and "words" not in (run["metrics"] or {})  # encoded before tags existed
    other_encoder = run is not None and run["model"] != cfg.encoder  # e.g. the default changed, or MARCONI_ENCODER
    if run is None or retrain or s["inserted"] or without_words or other_encoder:
        click.echo(f"==> encoding images with {cfg.encoder}")
        out = encode_images(c.engine, config=cfg, encoder=cfg.encoder)
        click.echo(f"    model run {out['run_id']}: {out['vectors']} images, {out['words'].get('tags', 0)} tags")
    else:
        click.echo(f"==> image model run {run['id']} already serving")
    demo_learned_metric(c, src)
    click.echo("==> preparing text search (the sentence vectors of the 1,000 class descriptions, cached)")
    from marconi.image_search.text_search import TextSearcher

    TextSearcher(cfg).space()


DEMO_FIT_PER_LABEL = 10  # Caltech-101 here has 20 photos a label: 1-10 fit the metric, 11-20 stay honest queries


def demo_learned_metric(c: Ctx, src) -> None:
    """Serve a metric learned from photos 1-10 of each label (setting chosen on them alone), unless one serves."""
    from marconi.runs import serving_run
    from marconi.training.images import NothingToLearn, train_images

    with c.engine.connect() as conn:
        run = serving_run(conn, "images")
    if run is None or (run["params"] or {}).get("metric"):
        return
    click.echo(f"==> learning a distance from the labels of photos 1-{DEMO_FIT_PER_LABEL} of each label")
    try:
        out = train_images(c.engine, c.config, fit_per_label=DEMO_FIT_PER_LABEL, shrinkage=None, blend=None)
    except NothingToLearn as exc:
        click.echo(f"    kept the encoder's own space: {exc}")
        return
    chosen, honest = out["report"]["chosen_on_fitted_photos"]["best"][0], out["leave_one_out"]
    click.echo(f"    model run {out['run_id']}: blend {chosen['blend']}, shrinkage {chosen['shrinkage']}; on the "
               f"{honest.get('queries', 0)} photos not fitted on, P@1 {honest.get('P@1')}, P@10 {honest.get('P@10')}")
    click.echo(f"==> evaluate images with: marconi eval images --queries {src} (the fitted photos are left out)")
