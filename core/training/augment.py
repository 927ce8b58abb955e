"""Training augmentation as one random affine warp per image (one resampling pass, on-graph).

Rotation +-15 deg, horizontal flip, zoom +-10%, width/height shift +-10%, fill 'nearest' -- the
specification's augmentation, composed into a single projective transform instead of four.
"""
from __future__ import annotations

import math
from typing import Any

ROTATION_DEG = 15.0
ZOOM = 0.10
SHIFT = 0.10


def random_affine(images: Any, seed: int | None = None) -> Any:
    """Augment a float batch (N, H, W, 3) with independent random affine warps."""
    import tensorflow as tf

    shape = tf.shape(images)
    n, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    angle = tf.random.uniform([n], -ROTATION_DEG, ROTATION_DEG, seed=seed) * (math.pi / 180.0)
    scale = 1.0 / tf.random.uniform([n], 1.0 - ZOOM, 1.0 + ZOOM, seed=seed)
    flip = tf.where(tf.random.uniform([n], seed=seed) < 0.5, -1.0, 1.0)
    tx = tf.random.uniform([n], -SHIFT, SHIFT, seed=seed) * w
    ty = tf.random.uniform([n], -SHIFT, SHIFT, seed=seed) * h
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    m00, m01, m10, m11 = cos * flip, -sin, sin * flip, cos
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    a2 = cx + tx - (m00 * cx + m01 * cy)
    b2 = cy + ty - (m10 * cx + m11 * cy)
    zeros = tf.zeros([n])
    transforms = tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")
