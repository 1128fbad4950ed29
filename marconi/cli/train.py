"""`marconi train …`: build models from the data in the database."""

from __future__ import annotations

from dataclasses import fields

import click

from marconi.cli.context import Ctx, echo_json, pass_ctx
from marconi.training.song2vec import SongParams

SONG_HELP = {
    "vector_size": "Dimensions (≤ 99 for ip scoring, ≤ 100 for cosine: cube's limit).",
    "window": "Context window in songs.",
    "sg": "1 = skip-gram, 0 = CBOW.",
    "negative": "Negative samples per positive.",
    "ns_exponent": "Exponent of the negative-sampling distribution (0.75 in word2vec; lower suits playlists).",
    "sample": "Down-sampling threshold for very frequent songs.",
    "epochs": "Passes over the playlists.",
    "min_count": "Ignore songs seen fewer times.",
    "alpha": "Initial learning rate.",
    "max_playlist_length": "Drop playlists longer than this.",
    "min_playlist_length": "Drop playlists shorter than this.",
    "max_artist_share": "Drop playlists where one artist has more than this share of the tracks.",
    "scoring": "ip: seeds' input vectors · candidates' output vectors (default). cosine: original marconi.",
    "blend": "Weight of co-occurrence in radio scores (0: song2vec alone).",
    "neighbours": "Co-occurring songs stored per song for the blend and the reasons.",
    "exposure_cap": "Most share of one-seed radios any one song may open (0: no cap).",
    "seed": "Random seed.",
    "workers": "Training threads.",
}


def song_options(func):
    """Add one option per SongParams field (its default and type come from SongParams)."""
    for f in reversed(fields(SongParams)):
        kw = {"default": f.default, "show_default": True, "help": SONG_HELP.get(f.name, "")}
        kw["type"] = click.Choice(["ip", "cosine"]) if f.name == "scoring" else type(f.default)
        func = click.option("--" + f.name.replace("_", "-"), f.name, **kw)(func)
    return func


@click.group()
def train():
    """Train models from the data in the database."""


@train.command("songs")
@song_options
@pass_ctx
def train_songs_cmd(c: Ctx, **options):
    """Train song2vec on the imported playlists and swap the new vectors in atomically.

    The previous model keeps serving until the new one is complete; a crash or kill leaves it in place.
    """
    from marconi.training.song2vec import train_songs

    try:
        summary = train_songs(c.checked_engine(), progress=True, config=c.config, **options)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    echo_json(summary)


class NumberOrAuto(click.ParamType):
    """A number in [low, high] (high None: no upper bound), or "auto" (None: chosen on the fitted photos)."""

    name = "number|auto"

    def __init__(self, low: float, high: float | None = None):
        """Accept numbers in [low, high]; ``low`` itself is refused when ``high`` is None (a positive weight)."""
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        """Return None for "auto", else the number, failing with the accepted range."""
        if value is None or value == "auto":
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
        ok = self.low <= number <= self.high if self.high is not None else number > self.low
        if not ok:
            span = f"in [{self.low:g}, {self.high:g}]" if self.high is not None else f"above {self.low:g}"
            self.fail(f"{value} is not {span} (or 'auto')", param, ctx)
        return number


@train.command("images")
@click.option("--holdout-classes", default="", metavar="LABELS|FILE",
              help="Labels to leave out of the fit, comma-separated or one per line in a file: the report then "
                   "shows how the metric does on labels it never saw.")
@click.option("--fit-per-label", default=None, type=click.IntRange(min=2),
              help="Fit on the first N images of each label (import order, i.e. sorted file names) and leave the "
                   "rest as honest queries: `marconi eval images` never scores the fitted ones. Default: all.")
@click.option("--shrinkage", default="auto", show_default=True, type=NumberOrAuto(0, 1),
              help="Regularisation of the within-label scatter (0: plain LDA, 1: ignore it); auto: chosen with "
                   "--blend by two-fold validation on the fitted images alone.")
@click.option("--blend", default="auto", show_default=True, type=NumberOrAuto(0),
              help="Weight of the learned directions beside the encoder's own vector (higher: fits the labels "
                   "more, generalises less); auto: chosen with --shrinkage on the fitted images alone.")
@click.option("--pca-dims", default=100, show_default=True, help="Dimensions of the indexed cube (≤ 100).")
@pass_ctx
def train_images_cmd(c: Ctx, holdout_classes, fit_per_label, shrinkage, blend, pca_dims):
    """Learn a distance from the images' labels and serve it (a new image model run).

    Same-label images are brought together (regularised LDA, blended with the encoder's space); queries are moved
    into the same space. The report compares encoder and learned space on
    photos and labels the fit never saw. `marconi encode images` goes back to the encoder's own space.
    """
    from pathlib import Path

    from marconi.training.images import train_images

    source = Path(holdout_classes)
    if holdout_classes and source.is_file():
        names = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    else:
        names = [n.strip() for n in holdout_classes.split(",") if n.strip()]
    summary = train_images(c.checked_engine(), c.config, names, shrinkage=shrinkage, blend=blend,
                           pca_dims=pca_dims, fit_per_label=fit_per_label)
    summary.pop("calibration", None)
    echo_json(summary)
