"""Gate layer 3: learned out-of-distribution scores on the classifier's own features (higher = less like the
training scans). `SCORES` is the registry the fitting step (`core.evaluation.trust_fit`) measures and chooses from;
each score fits a few numpy arrays (stored in the model folder's `trust.npz`, no pickles) and scores a batch.

Features (see `core.model.inference.predict_with_features`): "logits" (N, C), "penultimate" (N, D: the input of the
last Dense layer), and "stage<k>" (N, C_k: global-average-pooled output of each resolution stage of the backbone).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp, softmax

Params = dict[str, np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def stage_names(features: dict[str, np.ndarray]) -> list[str]:
    """The backbone stages present in a feature dict, shallow to deep."""
    return sorted((k for k in features if k.startswith("stage")), key=lambda k: int(k[5:]))


class Score:
    """One learned score: `fit` on in-distribution features (and, for outlier exposure, negatives), `score` a batch."""

    name: ClassVar[str] = ""
    uses_negatives: ClassVar[bool] = False

    def fit(self, features: dict[str, np.ndarray], labels: np.ndarray, negatives: dict[str, np.ndarray] | None = None,
            seed: int = 0) -> Params:
        raise NotImplementedError

    def score(self, features: dict[str, np.ndarray], params: Params) -> np.ndarray:
        raise NotImplementedError


class MaxSoftmax(Score):
    """1 - max softmax probability (the baseline; Hendrycks & Gimpel 2017)."""

    name = "msp"

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        return {}

    def score(self, features, params) -> np.ndarray:
        return 1.0 - softmax(features["logits"], axis=1).max(axis=1)


class Energy(Score):
    """Negative free energy: -logsumexp(logits) (Liu et al. 2020)."""

    name = "energy"

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        return {}

    def score(self, features, params) -> np.ndarray:
        return -logsumexp(features["logits"], axis=1)


class KNN(Score):
    """Distance to the k-th nearest training feature, cosine on the penultimate layer (Sun et al. 2022)."""

    name = "knn"
    k: ClassVar[int] = 10
    bank_size: ClassVar[int] = 2000

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        bank = _unit(features["penultimate"])
        if len(bank) > self.bank_size:
            bank = bank[np.random.default_rng(seed).choice(len(bank), self.bank_size, replace=False)]
        return {"bank": bank.astype(np.float32)}

    def score(self, features, params) -> np.ndarray:
        similarity = _unit(features["penultimate"]).astype(np.float32) @ params["bank"].T
        k = min(self.k, similarity.shape[1])
        kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        return 1.0 - kth.astype(np.float64)


def _fit_gaussian(x: np.ndarray, labels: np.ndarray | None, shrink: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Class means (or one mean) and the shared precision matrix, with a little ridge for stability."""
    groups = [x] if labels is None else [x[labels == c] for c in np.unique(labels)]
    means = np.stack([g.mean(axis=0) for g in groups])
    centred = np.concatenate([g - g.mean(axis=0) for g in groups])
    cov = centred.T @ centred / max(len(centred) - 1, 1)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    return means, np.linalg.inv(cov)


def _min_mahalanobis(x: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    d = x[:, None, :] - means[None]
    return np.einsum("nkd,de,nke->nk", d, precision, d).min(axis=1)


class Mahalanobis(Score):
    """Class-conditional Gaussians with a shared covariance on the penultimate layer (Lee et al. 2018)."""

    name = "mahalanobis"

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        means, precision = _fit_gaussian(features["penultimate"], labels)
        return {"means": means, "precision": precision}

    def score(self, features, params) -> np.ndarray:
        return _min_mahalanobis(features["penultimate"], params["means"], params["precision"])


class MultiStageMahalanobis(Score):
    """Sum over backbone stages of the standardised Mahalanobis distance of each stage's pooled features
    (one Gaussian per stage: early stages see texture and intensity, which photos and CT do not share with MRI)."""

    name = "mahalanobis_stages"

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        params: Params = {}
        for stage in stage_names(features):
            means, precision = _fit_gaussian(features[stage], None)
            d = _min_mahalanobis(features[stage], means, precision)
            params.update({f"{stage}_means": means, f"{stage}_precision": precision,
                           f"{stage}_scale": np.array([np.median(d), d.std() + 1e-12])})
        return params

    def score(self, features, params) -> np.ndarray:
        total = np.zeros(len(features["logits"]))
        for stage in stage_names(features):
            if f"{stage}_means" in params:
                d = _min_mahalanobis(features[stage], params[f"{stage}_means"], params[f"{stage}_precision"])
                median, spread = params[f"{stage}_scale"]
                total += (d - median) / spread
        return total


class ViM(Score):
    """Virtual-logit matching (Wang et al. 2022): the norm of the penultimate feature outside the principal
    subspace of the training features, scaled to the logits, against the energy."""

    name = "vim"

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        x = features["penultimate"]
        origin = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - origin, full_matrices=False)
        dim = min(max(len(vt) // 2, 1), 64) if len(vt) > 2 else 1
        null = vt[dim:].T
        residual = np.linalg.norm((x - origin) @ null, axis=1)
        alpha = logsumexp(features["logits"], axis=1).mean() / max(residual.mean(), 1e-12)
        return {"origin": origin, "null": null, "alpha": np.array(alpha)}

    def score(self, features, params) -> np.ndarray:
        residual = np.linalg.norm((features["penultimate"] - params["origin"]) @ params["null"], axis=1)
        return float(params["alpha"]) * residual - logsumexp(features["logits"], axis=1)


def image_statistics(images: np.ndarray) -> np.ndarray:
    """Cheap pixel statistics of preprocessed images (N, S, S, 3) in 0-255 that describe "an MRI slice" apart from
    what the classifier learned: the gray-level histogram, how much of the frame is dark background, left-right
    symmetry, and a 6x6 thumbnail of the layout (a bright head on a dark surround)."""
    import cv2

    rows = []
    for image in np.asarray(images, np.float32):
        gray = image.mean(axis=2) / 255.0
        size = gray.shape[0]
        hist = np.histogram(gray, bins=16, range=(0, 1))[0] / gray.size
        border = np.r_[gray[: size // 10].ravel(), gray[-size // 10:].ravel(), gray[:, : size // 10].ravel(),
                       gray[:, -size // 10:].ravel()]
        centre = gray[size // 4: 3 * size // 4, size // 4: 3 * size // 4]
        flipped = gray[:, ::-1]
        symmetry = np.corrcoef(gray.ravel(), flipped.ravel())[0, 1] if gray.std() > 1e-6 else 0.0
        gx, gy = np.gradient(gray)
        thumb = cv2.resize(gray, (6, 6), interpolation=cv2.INTER_AREA).ravel()
        rows.append(np.r_[hist, (gray < 0.05).mean(), border.mean(), border.std(), centre.mean(), gray.mean(),
                          gray.std(), symmetry, np.hypot(gx, gy).mean(), thumb])
    return np.asarray(rows, np.float64)


def head_inputs(features: dict[str, np.ndarray]) -> np.ndarray:
    """What the outlier-exposure head sees: every stage's pooled features, the log-softmax of the logits and,
    when present, the image statistics ("pixels")."""
    logits = features["logits"]
    log_proba = logits - logsumexp(logits, axis=1, keepdims=True)
    extra = [features["pixels"]] if "pixels" in features else []
    return np.concatenate([features[s] for s in stage_names(features)] + [log_proba] + extra, axis=1)


class OutlierExposureHead(Score):
    """A small "brain MRI vs not" head trained with outlier exposure (Hendrycks et al. 2019): L2-regularised
    logistic regression on the frozen classifier's multi-stage features, positives = training scans, negatives =
    images built from package sample images, synthetic images and transforms of scans that are no longer brain
    MRI. Score = the head's logit for "not a brain MRI"."""

    name = "oe_head"
    uses_negatives = True
    C: ClassVar[float] = 0.05

    def fit(self, features, labels, negatives=None, seed=0) -> Params:
        from sklearn.linear_model import LogisticRegression

        if negatives is None:
            raise ValueError("the outlier-exposure head needs negatives")
        pos, neg = head_inputs(features), head_inputs(negatives)
        x = np.concatenate([pos, neg])
        y = np.r_[np.zeros(len(pos)), np.ones(len(neg))]
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        weight = np.r_[np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))] * len(x)
        head = LogisticRegression(C=self.C, max_iter=2000, random_state=seed)
        head.fit((x - mean) / scale, y, sample_weight=weight)
        return {"mean": mean, "scale": scale, "coef": head.coef_[0], "intercept": head.intercept_}

    def score(self, features, params) -> np.ndarray:
        x = (head_inputs(features) - params["mean"]) / params["scale"]
        return x @ params["coef"] + float(params["intercept"][0])


SCORES: dict[str, type[Score]] = {cls.name: cls for cls in (
    MaxSoftmax, Energy, KNN, Mahalanobis, MultiStageMahalanobis, ViM, OutlierExposureHead)}


def get_score(name: str) -> Score:
    """An instance of a registered score."""
    if name not in SCORES:
        raise KeyError(f"unknown gate score '{name}' (known: {', '.join(SCORES)})")
    return SCORES[name]()


def describe(name: str) -> dict[str, Any]:
    """Name and first docstring line, for reports."""
    cls = SCORES[name]
    return {"name": name, "what": (cls.__doc__ or "").strip().splitlines()[0], "uses_negatives": cls.uses_negatives}
