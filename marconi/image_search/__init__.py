"""Reverse image search: build an index (encode → PCA → calibrate → model run) and answer queries.

- :mod:`~marconi.image_search.pca`: the reduction to cube's 100 dimensions, stored with the run.
- :mod:`~marconi.image_search.calibration`: confidence features, the calibrated confidence, AUC.
- :mod:`~marconi.image_search.build`: ``encode_images``: read images from Postgres, encode, reduce, calibrate, write
  a model run.
- :mod:`~marconi.image_search.search`: ``ImageSearcher``: encode → kNN → optional re-rank → confidence, one run per
  answer; the answer's message and ``confident`` flag (``config.image_confident_threshold``).
- :mod:`~marconi.image_search.request`: what a search request may hold (checked by ``marconi.api.params``).
"""
