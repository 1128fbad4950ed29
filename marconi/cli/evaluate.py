"""`marconi eval …`: offline quality against held-out data (`eval images` lives in marconi.cli.images)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from marconi.cli.context import Ctx, echo_json, pass_ctx


@click.group("eval")
def eval_():
    """Measure recommendation quality on held-out data against simple baselines."""


@eval_.command("split")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder: train.txt, holdout.txt, song_hash.txt. Its name becomes the key prefix on import.")
@click.option("--fraction", default=0.1, show_default=True, help="Share of eligible playlists held out.")
@click.option("--min-length", default=5, show_default=True, help="Only playlists with at least this many songs.")
@click.option("--seed", default=42, show_default=True)
def eval_split(path, out, fraction, min_length, seed):
    """Split a yes.com data set into a training part and held-out playlists."""
    from marconi.evaluation.radio import split_yes

    echo_json(split_yes(path, out, fraction, min_length, seed))


COLUMNS = (("recommender", "<24", "s"), ("queries", ">8", "d"), ("HR@10", ">8", ".4f"), ("HR@50", ">8", ".4f"),
           ("MRR", ">8", ".4f"), ("radios", ">8", "d"), ("recall@50", ">11", ".4f"), ("distinct@10", ">13", "d"),
           ("max_share@10", ">14", ".4f"), ("tag_jaccard@10", ">16", ".4f"))


def radio_table(rows: list[dict]) -> str:
    """The eval radio results as a fixed-width table (n/a where a figure is missing)."""
    lines = ["".join(f"{name:{align}}" for name, align, _ in COLUMNS)]
    for r in rows:
        lines.append("".join(f"{'n/a' if r.get(name) is None else format(r[name], fmt):{align}}"
                             for name, align, fmt in COLUMNS))
    return "\n".join(lines)


@eval_.command("radio")
@click.option("--holdout", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Held-out playlists in yes.com format, same song indices as the imported set.")
@click.option("--source", default=None, help="Key prefix of the imported set (default: the holdout's folder name).")
@click.option("--max-queries", default=5000, show_default=True, help="Next-song queries to sample.")
@click.option("--no-baselines", is_flag=True, help="Only evaluate the served radio.")
@click.option("--variety", "varieties", multiple=True, type=click.FloatRange(0, 1), default=(0.0,),
              show_default=True, help="Radio variety to evaluate (repeat to compare several, e.g. --variety 0 "
                                      "--variety 0.25 --variety 0.5).")
@click.option("--tags", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Last.fm tags in yes.com tags.txt format for tag_jaccard@10. Default: tags.txt beside the "
                   "holdout, else $MARCONI_DATA_DIR/playlists/<source>/tags.txt, else the column is left out.")
@click.option("--json-out", type=click.Path(path_type=Path), help="Also write the results as JSON here.")
@pass_ctx
def eval_radio_cmd(c: Ctx, holdout, source, max_queries, no_baselines, varieties, tags, json_out):
    """Next-song HR@10/HR@50/MRR and 3-seed radio recall@50, for the served radio and baselines.

    Also how varied the answers are: distinct@10 (different songs across all next-song top 10s) and max_share@10
    (share of top 10s holding the most frequent song), and how on-topic: tag_jaccard@10 (mean Jaccard of the
    seed's and each recommended song's Last.fm tags).
    """
    from marconi.evaluation.radio import eval_radio

    rows = eval_radio(c.checked_engine(), holdout, source=source, max_queries=max_queries,
                      baselines=not no_baselines, ann=c.config.ann, varieties=varieties, tags=tags,
                      data_dir=c.config.data_dir, ef_search=c.config.hnsw_ef_search)
    click.echo(radio_table(rows))
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))
