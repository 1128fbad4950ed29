"""Would a learned image → text projection (DeViSE, Frome et al. 2013) help text search? (hand-run)

Uses bench/eval_text_methods.py's image cache (EfficientNet-Lite0 features and class probabilities of the 2,000
Caltech photos) and the served class-space ranking (marconi.text.query, neighbour-smoothed √p as the index stores
it). A linear map from the 1280-d image features to the 384-d MiniLM space is fitted on the labelled photos of the
even-indexed folders only, with DeViSE's hinge rank loss against the other folder names' vectors. Queries are the
folder names; P@10 is reported separately for the folders the projection was trained on and for the odd folders,
which it never saw (the honest figure), for the projection alone and fused with the served score.

    .venv/bin/python bench/eval_devise.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import DATA, encode_images, metrics, stored_class_scores  # noqa: E402

from marconi.config import Config  # noqa: E402
from marconi.encoders import load_encoder  # noqa: E402
from marconi.evaluation.text_images import query_of  # noqa: E402
from marconi.text.query import ClassSpace, class_text_vectors  # noqa: E402


def fit_devise(feats: np.ndarray, targets: np.ndarray, label_vectors: np.ndarray, margin: float = 0.1,
               epochs: int = 300, lr: float = 0.01, seed: int = 0) -> np.ndarray:
    """Return W (1280, 384): hinge rank loss Σ_j max(0, margin - t_y·Wx + t_j·Wx) over the other labels."""
    torch.manual_seed(seed)
    x = torch.from_numpy(feats).float()
    t = torch.from_numpy(label_vectors).float()
    y = torch.from_numpy(targets).long()
    w = torch.nn.Parameter(torch.randn(x.shape[1], t.shape[1]) * 0.01)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        s = torch.nn.functional.normalize(x @ w, dim=1) @ t.T
        loss = (margin - s.gather(1, y[:, None]) + s).clamp(min=0)
        loss = (loss.sum(dim=1) - margin).mean()  # the true label's own term is exactly the margin
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy()


def main() -> None:
    labels, feats, probs = encode_images(DATA, Path("/tmp/marconi-eval-text"), "cpu")
    labels = np.array(labels)
    folders = sorted(set(labels.tolist()))
    queries = [query_of(f) for f in folders]
    relevant = np.array([[lab == f for lab in labels] for f in folders])
    trained = np.arange(len(folders)) % 2 == 0
    encoder = load_encoder("minilm", device="cpu", cache_dir=Config().model_dir)
    qvec = encoder.encode_texts(queries)
    qvec /= np.linalg.norm(qvec, axis=1, keepdims=True)
    fit_rows = np.isin(labels, np.array(folders)[trained])
    index = {f: i for i, f in enumerate(np.array(folders)[trained])}
    targets = np.array([index[lab] for lab in labels[fit_rows]])
    w = fit_devise(feats[fit_rows], targets, qvec[trained])
    projected = feats @ w
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    devise = qvec @ projected.T
    space = ClassSpace(encoder, class_text_vectors(encoder, Config().model_dir))
    stored = stored_class_scores(probs, feats)
    served = np.stack([space.score_stored(space.query(q), stored) for q in queries])
    print("| ranking | P@10 trained folders | P@10 folders never seen | mAP never seen |\n|---|---|---|---|")

    def z(s):
        return (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)

    for name, s in [("served (class space)", served), ("DeViSE projection alone", devise)] + [
            (f"served + {g:g} × DeViSE (z-scored)", z(served) + g * z(devise)) for g in (0.25, 0.5, 1.0)]:
        p10, ap = metrics(s, relevant)
        print(f"| {name} | {p10[trained].mean():.3f} | {p10[~trained].mean():.3f} | {ap[~trained].mean():.3f} |")


if __name__ == "__main__":
    main()
