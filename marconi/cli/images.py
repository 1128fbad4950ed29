"""`marconi import images`, `marconi encode images`, `marconi eval images` (wired in marconi.cli).

Each command is a thin wrapper whose options are the keyword arguments of one stage function. The names
``import_images_cmd``, ``encode`` (the group) and ``eval_images_cmd`` are what marconi.cli wires; a MarconiError
(no images, encoder weights missing, a build already running) is reported by the main group as a one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from marconi.cli.context import Ctx, pass_ctx


class EncoderName(click.ParamType):
    """An encoder name from the registry (marconi.encoders), checked when given, so ``--help`` never loads torch."""

    name = "encoder"

    def convert(self, value, param, ctx):
        """Return ``value`` when it names a registered image encoder; otherwise fail listing the names."""
        from marconi.encoders import IMAGE_ENCODERS

        if value not in IMAGE_ENCODERS:
            self.fail(f"unknown image encoder {value!r}; choose one of {', '.join(IMAGE_ENCODERS)}", param, ctx)
        return value


@click.command("images")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--source", default="import", show_default=True, help="Recorded as the images' source.")
@click.option("--licence", default=None, help="Licence of the images (Caltech-101 is recognised: CC BY 4.0).")
@click.option("--licence-url", default=None)
@click.option("--attribution", default=None, help="Credit line shown with the images.")
@pass_ctx
def import_images_cmd(c: Ctx, path, source, licence, licence_url, attribution):
    """Import a folder tree PATH/<label>/<image> (jpg, png, gif, webp, bmp, tiff).

    Duplicates (same bytes) are stored once; unreadable files are skipped and listed. Idempotent.
    """
    from marconi.importers.images import import_images

    s = import_images(c.checked_engine(), path, c.config, source, licence, licence_url, attribution)
    click.echo(f"images: {s['seen']} seen, {s['inserted']} new, {s['duplicates']} already stored, "
               f"{s['failed']} unreadable")
    for p, reason in s["failures"][:20]:
        click.echo(f"  skipped {p}: {reason}", err=True)


@click.group()
def encode():
    """Encode stored items into a new serving model run."""


@encode.command("images")
@click.option("--encoder", default=None, type=EncoderName(),
              help="efficientnet-lite0-2view, efficientnet-lite0-256, efficientnet-lite0, efficientnet-lite2, "
                   "vgg16-conv or vgg16 (any image encoder in marconi.encoders.ENCODERS). Default: $MARCONI_ENCODER "
                   "or efficientnet-lite0-2view (Lite0 over a 224 centre crop and the whole image at 256x256: best "
                   "measured P@k for its speed here; efficientnet-lite0-256 is the whole image alone, about 1.8x "
                   "faster, and efficientnet-lite0 the crop alone, faster still).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", default=0, show_default=True, help="Decoding processes (0 = decode inline).")
@click.option("--pca-dims", default=100, show_default=True, help="Dimensions of the indexed cube (≤ 100).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Weights file (e.g. torchvision's vgg16-397923af.pth for --encoder vgg16).")
@click.option("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the encoder: ~10 s warm-up, then faster (1.6-1.8x on a 2-core CPU; on CUDA one "
                   "CUDA graph per batch, 2x end to end on an H200); needs a C++ compiler (g++) for CPU runs.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Decode and encode on a Ray cluster: auto (the cluster this machine is a node of) or the head's "
                   "host:port. Resumable: after a stop, the same command encodes only what is missing. "
                   "Needs Ray (pip install ray) on every node.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None,
              help="With --ray: how many workers (default: one per GPU where the cluster has GPUs, else one per CPU).")
@pass_ctx
def encode_images_cmd(c: Ctx, encoder, batch_size, workers, pca_dims, weights, device, compile_, ray_address,
                      ray_workers):
    """Encode every stored image, fit PCA, calibrate confidence, and swap the new index in atomically."""
    from marconi.image_search.build import encode_images

    if ray_workers is not None and not ray_address:
        raise click.UsageError("--ray-workers goes with --ray ADDRESS")
    cfg = c.config.with_overrides(device=device) if device else c.config
    try:
        if ray_address:
            from marconi.image_search.ray_encode import encode_images_on_ray, import_ray

            import_ray()  # before the database: without Ray, one line on how to install it
            out = encode_images_on_ray(c.checked_engine(), cfg, ray_address, encoder, batch_size, workers, pca_dims,
                                       weights, compile=compile_, ray_workers=ray_workers)
        else:
            out = encode_images(c.checked_engine(), cfg, encoder, batch_size, workers, pca_dims, weights,
                                compile=compile_)
    except ValueError as exc:  # an unknown device or dtype; MarconiErrors are reported by the main group
        raise click.ClickException(str(exc)) from None
    out.pop("calibration", None)
    click.echo(json.dumps(out, indent=2, default=str))


@click.command("images")
@click.option("--queries", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled folder tree <label>/<image>; labels must match the indexed labels.")
@click.option("--k", default=10, show_default=True)
@click.option("--rerank/--no-rerank", default=None,
              help="Re-order the cube's candidates by the full vectors (default: $MARCONI_IMAGE_RERANK, off).")
@click.option("--metrics", default=None, metavar="LIST",
              help="Instead: compare distance metrics leave-one-out on the serving run's stored vectors and labels, "
                   "comma-separated from cosine, euclidean, l1, whitened, served (or 'all').")
@click.option("--sample", default=2000, show_default=True,
              help="With --metrics or --collage: at most this many queries.")
@click.option("--collage", is_flag=True,
              help="Instead: region search. Each query photo goes into one cell of a 2x2 collage with photos of three "
                   "other labels, searched whole and with the box of its cell (P@1, P@10 of both and of the photo "
                   "alone).")
@click.option("--seed", default=0, show_default=True, help="With --collage: seed of the collages and the sample.")
@pass_ctx
def eval_images_cmd(c: Ctx, queries, k, rerank, metrics, sample, collage, seed):
    """P@1, P@10 and confidence separation (AUC) through the served search path.

    Photos that are themselves in the index are answered with themselves left out; photos the serving run's learned
    metric was fitted on (`marconi train images`) are not scored at all, and a line says how many. With --metrics,
    distance metrics are compared on the stored vectors instead (no photos are read; figures also per half of the
    labels, to choose on one half and read the other). With --collage, region search is measured
    (marconi.evaluation.collage).
    """
    if metrics is not None and collage:
        raise click.UsageError("--metrics and --collage are two different evaluations: give one")
    if metrics is not None:
        from marconi.evaluation.image_metrics import METRICS

        names = list(METRICS) if metrics.strip() == "all" else [m.strip() for m in metrics.split(",") if m.strip()]
        click.echo(json.dumps(_compare_metrics(c, names, k, sample), indent=2))
        return
    if queries is None:
        raise click.UsageError("give --queries DIRECTORY (or --metrics to compare distance metrics)")
    if collage:
        from marconi.evaluation.collage import eval_collage

        try:
            res = eval_collage(c.checked_engine(), queries, c.config, k, rerank=rerank, sample=sample, seed=seed)
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(res, indent=2))
        return
    from marconi.evaluation.images import eval_images

    try:
        res = eval_images(c.checked_engine(), queries, c.config, k, rerank=rerank)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if "excluded_why" in res:
        click.echo(res["excluded_why"], err=True)
    click.echo(json.dumps(res, indent=2))


def _compare_metrics(c: Ctx, names: list[str], k: int, sample: int) -> dict:
    """Run marconi.evaluation.image_metrics.compare on the serving image run, never asking a fitted photo."""
    import numpy as np

    from marconi.db.images import serving_vectors
    from marconi.evaluation.image_metrics import compare
    from marconi.image_search.search import ImageSearcher
    from marconi.training.images import fitted_image_ids

    engine = c.checked_engine()
    with engine.connect() as conn:
        run_id, ids, full, labels = serving_vectors(conn)
        if run_id is None:
            raise click.ClickException("no image model run is serving: run `marconi encode images` first")
        snap = ImageSearcher(c.config, engine).snapshot(conn, run_id)
        fitted = fitted_image_ids(conn, run_id)
    served = snap.pca.transform if snap.metric is None else (lambda x: snap.pca.transform(snap.metric.transform(x)))
    may_ask = np.array([i not in fitted for i in ids], dtype=bool)
    try:
        out = {"model_run": run_id, **compare(full, labels, names, served=served, k=k, sample=sample,
                                              may_ask=may_ask)}
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if fitted:
        out["excluded_fitted"] = int((~may_ask).sum())
        click.echo(f"{out['excluded_fitted']} photos are not asked (they stay in the index): the serving run's "
                   f"learned metric was fitted on them", err=True)
    return out


@click.command("text-images")
@click.option("--queries", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled folder tree <label>/<image> of indexed images; folder names become the text queries.")
@pass_ctx
def eval_text_images_cmd(c: Ctx, queries):
    """Words → images P@10 and mAP@100, and image → tags match, with folder names as queries.

    The images are found in the index by their bytes, so the index may have been built without labels; the
    ranker never sees labels.
    """
    from marconi.evaluation.text_images import eval_text_images

    click.echo(json.dumps(eval_text_images(c.checked_engine(), queries, c.config), indent=2))


@click.group()
def search():
    """Ask the serving index from the command line (the same answers as the API)."""


@search.command("images")
@click.option("--text", "text", required=True, help='Words to look for, e.g. "a vehicle with two wheels".')
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 50), help="How many images.")
@pass_ctx
def search_images_cmd(c: Ctx, text, k):
    """Find images by words (ranked from the pixels): prints id, similarity, label and source of each match."""
    from marconi.image_search.text_search import TextSearcher

    with c.checked_engine().connect() as conn:
        answer = TextSearcher(c.config).search(conn, text, k)
    click.echo(f"{answer['message']} (confidence {answer['confidence']}, image model run {answer['model_run']})")
    for m in answer["matches"]:
        click.echo(f"{m['id']:>8}  {m['similarity']:.3f}  {m['label'] or '-':<24} {m['source_url'] or ''}")
