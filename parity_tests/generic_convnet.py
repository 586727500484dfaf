"""A dilated conv net with batch norm the kit has never seen: TF reference, JAX ports, bugs.

The reference is a ``tf.function``: ``conv1d`` of even width 4 (8 -> 16 features, SAME: TF pads
one step before and two after), inference batch norm (``tf.compat.v1.nn.batch_normalization``
with stored moments, epsilon 1e-3, the Keras default), ReLU, a width-3 ``conv1d`` dilated by 2
(SAME, bias), ReLU, then the maximum over each row's valid positions. Outputs:
``features (B, T, 16)`` (time axis 1) and ``pooled (B, 16)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.parity import generic_models as gm
from unirep_port.porting import tap
from unirep_port.tfstart import import_tensorflow

FEATURES, C, MAX_T, BN_EPS = 8, 16, 16, 1e-3
NAMES, TIME_AXIS = ("features", "pooled"), (1, None)
TAPS = {"bn": ("convnet/bn:0", 1), "features": ("convnet/features:0", 1)}

VARIANTS = {
    "folded_bn": ("rewrite", "batch norm folded into the first conv's kernel and a bias"),
    "im2col": ("rewrite", "convolutions as matmuls of shifted, stacked inputs"),
    "mask_finfo_min": ("rewrite", "masked max with float32's lowest value, not -inf"),
    "bn_eps_1e-5": ("bug", "batch-norm epsilon 1e-5 instead of 1e-3"),
    "same_split_wrong": ("bug", "even-kernel SAME padding split two before, one after"),
    "dilation_dropped": ("bug", "the second conv's dilation left out"),
    "max_over_padding": ("bug", "maximum over padding positions too"),
    "kernel_float16": ("bug", "conv kernels round-tripped through float16"),
    "bias_off_1e-4": ("bug", "second conv's bias off by 1e-4"),
}


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "k1": rng.normal(0, 0.3, (4, FEATURES, C)).astype(np.float32),
        "gamma": (1 + rng.normal(0, 0.2, C)).astype(np.float32),
        "beta": rng.normal(0, 0.2, C).astype(np.float32),
        "mean": rng.normal(0, 0.5, C).astype(np.float32),
        "var": rng.uniform(0.2, 2.0, C).astype(np.float32),
        "k2": rng.normal(0, 0.25, (3, C, C)).astype(np.float32),
        "b2": rng.normal(0, 0.1, C).astype(np.float32),
    }


def reference(seed: int = 0):
    """The net as a ``tf.function(features (B, T, 8) float32, lengths (B,) int32)``."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    w = {k: tf.Variable(v, name=k) for k, v in _weights(seed).items()}

    @tf.function(autograph=False)
    def ref(x, lengths):
        with tf.name_scope("convnet"):
            h = tf.nn.conv1d(x, w["k1"], 1, "SAME")  # (B, T, 8) * (4, 8, 16) -> (B, T, 16)
            h = v1.nn.batch_normalization(h, w["mean"], w["var"], w["beta"], w["gamma"], BN_EPS)
            h = tf.identity(tf.nn.relu(h), "bn")
            h = tf.nn.conv1d(h, w["k2"], 1, "SAME", dilations=2) + w["b2"]
            h = tf.identity(tf.nn.relu(h), "features")
            mask = tf.sequence_mask(lengths, tf.shape(h)[1])[..., None]  # (B, T, 1)
            pooled = tf.reduce_max(tf.where(mask, h, tf.fill(tf.shape(h), -np.inf)), 1)
            return h, pooled

    ref.variables_by_name = w  # what generic_models.weights_of reads
    return ref


def example_inputs(rng: np.random.Generator, n: int, t: int = MAX_T, batch: int = 3):
    """``n`` batches ``(features (B, T, 8) float32, lengths (B,) int32)``, first row full."""
    return gm.example_features(rng, n, t, batch, features=FEATURES)


def _conv(x, k, pad, dilation, im2col):
    """(B, T, Cin) * (K, Cin, Cout) -> (B, T, Cout) with ``pad = (before, after)``."""
    if not im2col:
        return jax.lax.conv_general_dilated(
            x, k, (1,), [pad], rhs_dilation=(dilation,), dimension_numbers=("NWC", "WIO", "NWC")
        )
    xp = jnp.pad(x, [(0, 0), pad, (0, 0)])
    t = x.shape[1]
    cols = jnp.concatenate([xp[:, i * dilation : i * dilation + t] for i in range(k.shape[0])], -1)
    return cols @ k.reshape(-1, k.shape[-1])  # (B, T, K*Cin) @ (K*Cin, Cout)


def port(w: dict[str, np.ndarray], variant: str | None = None):
    """The JAX port: ``fn(x, lengths) -> (features (B, T, 16), pooled (B, 16))``."""
    if variant == "kernel_float16":
        w = {
            k: (v.astype(np.float16).astype(np.float32) if k.startswith("k") else v)
            for k, v in w.items()
        }
    w = {k: jnp.asarray(v) for k, v in w.items()}
    eps = 1e-5 if variant == "bn_eps_1e-5" else BN_EPS
    pad1 = (2, 1) if variant == "same_split_wrong" else (1, 2)  # TF: the odd step goes after
    dil = 1 if variant == "dilation_dropped" else 2
    im2col = variant == "im2col"

    @jax.jit
    def fn(x, lengths):
        inv = jax.lax.rsqrt(w["var"] + eps)  # (C,)
        if variant == "folded_bn":
            scale = w["gamma"] * inv
            h = _conv(x, w["k1"] * scale, pad1, 1, False) + (w["beta"] - w["mean"] * scale)
        else:
            h = _conv(x, w["k1"], pad1, 1, im2col)
            h = (h - w["mean"]) * inv * w["gamma"] + w["beta"]
        h = tap("bn", jax.nn.relu(h))
        b2 = w["b2"] + (1e-4 if variant == "bias_off_1e-4" else 0.0)
        h = tap("features", jax.nn.relu(_conv(h, w["k2"], (dil, dil), dil, im2col) + b2))
        mask = (jnp.arange(h.shape[1])[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
        if variant == "max_over_padding":
            return h, h.max(1)
        low = jnp.finfo(jnp.float32).min if variant == "mask_finfo_min" else -jnp.inf
        return h, jnp.where(mask, h, low).max(1)

    return fn
