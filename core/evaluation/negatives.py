"""Images that are not brain MRI slices, built here for fitting and choosing the input gate (outlier exposure),
and shifted copies of brain scans that still are brain MRI (so the gate learns to accept other scanners' styles).

Sources, all on this machine: scikit-image's and scikit-learn's bundled sample images, pydicom's bundled test
files (non-MR modalities), synthetic images, and transforms of training scans that are no longer a brain slice
(heavy crops, shuffled tiles, mosaics, edge maps). Never the external evaluation sets. Every negative is a random
crop/transform of its source, so a copy of a package image in an evaluation set is not reproduced as such.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SKIMAGE_IMAGES = ("astronaut", "camera", "cat", "coffee", "rocket", "horse", "moon", "text", "brick", "grass",
                  "gravel", "hubble_deep_field", "colorwheel", "logo", "page", "clock", "coins", "checkerboard",
                  "binary_blobs", "chelsea", "stereo_motorcycle")
SKIMAGE_MEDICAL = ("retina", "microaneurysms", "immunohistochemistry", "cell", "shepp_logan_phantom")


@dataclass
class Negatives:
    """RGB uint8 images of any size, with the family each was built from (the unit of held-out selection)."""

    images: list[np.ndarray]
    families: list[str]


def _rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = array.astype(np.float64)
        array = (array - array.min()) / max(float(np.ptp(array)), 1e-9) * 255
        array = array.astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _gray(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    return (255.0 * (image / 255.0) ** gamma).astype(np.uint8)


def random_view(image: np.ndarray, rng: np.random.Generator, min_side: float = 0.2, gray: float = 0.8) -> np.ndarray:
    """A random crop (min_side..100% of each side), mostly grayscale, with random gamma, flip and blur."""
    h, w = image.shape[:2]
    ch, cw = (max(8, int(s * rng.uniform(min_side, 1.0))) for s in (h, w))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    view = image[y:y + ch, x:x + cw]
    size = int(rng.integers(96, 320))
    view = cv2.resize(view, (size, size), interpolation=cv2.INTER_AREA if min(ch, cw) > size else cv2.INTER_LINEAR)
    if rng.random() < gray:
        view = _gray(view)
    view = _gamma(view, float(np.exp(rng.normal(0, 0.3))))
    if rng.random() < 0.5:
        view = view[:, ::-1]
    if rng.random() < 0.3:
        view = cv2.GaussianBlur(view, (0, 0), float(rng.uniform(0.5, 2.0)))
    return np.ascontiguousarray(view)


@functools.lru_cache(maxsize=4)
def package_images(names: tuple[str, ...]) -> list[np.ndarray]:
    """scikit-image sample images that load without a download (and scikit-learn's two, for photos)."""
    import skimage.data

    images = []
    for name in names:
        try:
            value = getattr(skimage.data, name)()
        except Exception:  # some need optional downloads (pooch): skipped, the rest are enough
            continue
        images.append(_rgb(value[0] if isinstance(value, tuple) else value))
    if names == SKIMAGE_IMAGES:
        from sklearn.datasets import load_sample_images

        images.extend(_rgb(i) for i in load_sample_images().images)
    return images


@functools.lru_cache(maxsize=2)
def pydicom_images(limit: int = 80) -> list[np.ndarray]:
    """pydicom's bundled test files that are not MR, decoded by the app's own decoder."""
    import logging
    import warnings

    import pydicom.data

    from core.io.images import dicom_modality, read_image

    images = []
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.CRITICAL)  # the test files are deliberately odd; their warnings are noise here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the files shipped inside the package (get_testdata_files would also try to download pydicom-data)
        for path in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm")):
            if dicom_modality(path) == "MR":
                continue
            try:
                image = read_image(path)
            except Exception:  # compressed syntaxes without a codec, corrupt test files: skipped
                continue
            if image.std() > 3:
                images.append(image)
            if len(images) >= limit:
                break
    pydicom_log.setLevel(level)
    return images


def synthetic_image(rng: np.random.Generator) -> np.ndarray:
    """One random synthetic image: noise fields, gradients, shapes, stripes, checkerboards or text."""
    size = int(rng.integers(96, 320))
    kind = rng.integers(0, 6)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        image = rng.normal(128, rng.uniform(10, 80), (size, size))
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.1, 8)))
    elif kind == 1:
        angle = rng.uniform(0, np.pi)
        image = 255 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.normal(0, 5, (size, size))
    elif kind == 2:
        image = np.full((size, size), rng.uniform(0, 255))
        for _ in range(int(rng.integers(1, 12))):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            if rng.random() < 0.5:
                cv2.circle(image, centre, int(rng.integers(4, size // 2)), float(rng.uniform(0, 255)), -1)
            else:
                other = tuple(int(v) for v in rng.integers(0, size, 2))
                cv2.rectangle(image, centre, other, float(rng.uniform(0, 255)), int(rng.choice([-1, 2, 5])))
    elif kind == 3:
        freq = rng.uniform(2, 30)
        image = 127.5 + 127.5 * np.sin(2 * np.pi * freq * (xx if rng.random() < 0.5 else xx + yy))
    elif kind == 4:
        cells = int(rng.integers(2, 16))
        image = 255.0 * ((np.floor(xx * cells) + np.floor(yy * cells)) % 2)
    else:
        background = 255 if rng.random() < 0.7 else 0
        image = np.full((size, size), background, np.uint8)
        for line in range(int(rng.integers(3, 12))):
            text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz 0123456789"), int(rng.integers(5, 20))))
            cv2.putText(image, text, (5, 20 + 22 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255 - background, 1,
                        cv2.LINE_AA)
    return _rgb(np.clip(image, 0, 255).astype(np.uint8))


def brain_part(scans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A transform of brain scans that is no longer a brain MRI slice: a small crop blown up, shuffled tiles,
    a mosaic of small scans, or an edge map."""
    scan = scans[rng.integers(len(scans))]
    size = scan.shape[0]
    kind = rng.integers(0, 4)
    if kind == 0:
        side = int(size * rng.uniform(0.1, 0.25))
        y, x = rng.integers(size // 5, size - side - size // 5 + 1, 2)
        out = cv2.resize(scan[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_LINEAR)
    elif kind == 1:
        n = int(rng.choice([4, 8]))
        step = size // n
        tiles = [scan[i * step:(i + 1) * step, j * step:(j + 1) * step] for i in range(n) for j in range(n)]
        order = rng.permutation(len(tiles))
        rows = [np.concatenate([tiles[order[i * n + j]] for j in range(n)], axis=1) for i in range(n)]
        out = np.concatenate(rows, axis=0)
    elif kind == 2:
        n = int(rng.choice([3, 4]))
        small = [cv2.resize(scans[i], (size // n, size // n), interpolation=cv2.INTER_AREA)
                 for i in rng.integers(0, len(scans), n * n)]
        out = np.concatenate([np.concatenate(small[i * n:(i + 1) * n], axis=1) for i in range(n)], axis=0)
    else:
        gray = cv2.cvtColor(scan, cv2.COLOR_RGB2GRAY).astype(np.float32)
        edges = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        out = _rgb(edges)
    return np.ascontiguousarray(out.astype(np.uint8))


def build_negatives(brain_scans: np.ndarray, seed: int = 0, per_family: int = 400) -> Negatives:
    """`per_family` negatives from each family: photos, medical images of other kinds, synthetic, brain parts."""
    rng = np.random.default_rng(seed)
    photos, medical = package_images(SKIMAGE_IMAGES), package_images(SKIMAGE_MEDICAL) + pydicom_images()
    makers: dict[str, Callable[[], np.ndarray]] = {
        "photos": lambda: random_view(photos[rng.integers(len(photos))], rng),
        "medical_other": lambda: random_view(medical[rng.integers(len(medical))], rng, min_side=0.3),
        "synthetic": lambda: synthetic_image(rng),
        "brain_parts": lambda: brain_part(brain_scans, rng),
    }
    images, families = [], []
    for family, make in makers.items():
        for _ in range(per_family):
            images.append(make())
            families.append(family)
    return Negatives(images, families)


def shifted_scan(scan: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brain scan as another scanner or site might show it: gamma, contrast, blur, noise, zoom in/out (black
    padding), rotation and JPEG re-encoding, each at random. Still a brain MRI slice: the gate must accept it."""
    size = scan.shape[0]
    out = scan.astype(np.float32)
    out = 255.0 * (out / 255.0) ** float(np.exp(rng.normal(0, 0.35)))
    out = np.clip((out - out.mean()) * rng.uniform(0.7, 1.4) + out.mean(), 0, 255)
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.4:
        out = out + rng.normal(0, rng.uniform(2, 12), out.shape)
    scale = float(rng.uniform(0.75, 1.2))
    angle = float(rng.uniform(-20, 20))
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    out = cv2.warpAffine(np.clip(out, 0, 255).astype(np.uint8), matrix, (size, size), borderValue=(0, 0, 0))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        ok, buffer = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        out = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if ok else out
    return np.ascontiguousarray(out.astype(np.uint8))
