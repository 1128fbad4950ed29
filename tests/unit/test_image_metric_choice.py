"""Choosing the learned metric's setting on the fitted photos alone (marconi.training.image_metric_choice)."""

from __future__ import annotations

import numpy as np
from hidden_labels import hidden_labels

from marconi.training.image_metric_choice import choose_setting, first_of_each_label


def _hidden_labels(seed=0):
    return hidden_labels(seed, labels=6, per=10)


def test_first_of_each_label_keeps_the_first_rows_of_each_label_in_row_order():
    labels = np.array(["a", "b", "a", "a", "b", "a", "c"], dtype=object)
    mask = np.array([True, True, True, False, True, True, True])
    assert first_of_each_label(labels, mask, 2).tolist() == [True, True, True, False, True, False, True]
    # None: the first half, rounded up (a: rows 0, 2, 5 of the mask -> 0 and 2)
    assert first_of_each_label(labels, mask).tolist() == [True, True, True, False, False, False, True]


def test_a_metric_that_helps_is_chosen_and_every_candidate_is_reported():
    x, y = _hidden_labels()
    choice = choose_setting(x, y, blends=(0.5, 4.0), shrinkages=(0.1, 0.5), pca_dims=20, k=4)
    assert choice["blend"] is not None and choice["shrinkage"] in (0.1, 0.5)
    rows = choice["validation"]
    assert len(rows) == 1 + 2 * 2 and choice["queries"] == len(x)
    encoder = next(r for r in rows if r["blend"] is None)
    assert rows[0]["P@1"] + rows[0]["P@4"] > encoder["P@1"] + encoder["P@4"]


def test_the_encoder_space_wins_when_no_metric_beats_it():
    rng = np.random.default_rng(1)
    x = np.repeat(np.eye(6, 30) * 10, 6, axis=0) + rng.standard_normal((36, 30)) * 0.01  # already apart
    y = np.repeat([f"l{i}" for i in range(6)], 6)
    choice = choose_setting(x, y, blends=(0.5,), shrinkages=(0.3,), pca_dims=10, k=2)
    assert choice["validation"][0]["P@1"] == 1.0
    assert choice["blend"] is None and choice["shrinkage"] is None  # a tie keeps the encoder's own space


def test_train_images_takes_a_number_or_auto_and_refuses_the_rest():
    from click.testing import CliRunner

    from marconi.cli import main

    for args, message in ((["--blend", "0"], "0 is not above 0 (or 'auto')"),
                          (["--shrinkage", "1.5"], "1.5 is not in [0, 1] (or 'auto')"),
                          (["--blend", "much"], "'much' is neither a number nor 'auto'"),
                          (["--fit-per-label", "1"], "--fit-per-label")):
        result = CliRunner().invoke(main, ["train", "images", *args])
        assert result.exit_code == 2 and message in result.output, result.output
