"""A post-LN transformer encoder the kit has never seen: TF reference, JAX ports, planted bugs.

The reference is a ``tf.function`` written with TF1-era ops (``tf.nn.moments``, ``tf.math.erf``,
an additive ``-1e4`` key-padding mask, as BERT's TF1 code does): token embedding plus learned
positions, two post-LN layers (4 heads, LayerNorm epsilon 1e-12, erf GELU), then the masked mean.
Outputs: ``hidden (B, T, 32)`` (time axis 1) and ``pooled (B, 32)``. Taps mark each layer's two
LayerNorm outputs, named in the graph by ``tf.identity`` (``layer0/ln1`` ...).

The JAX port follows the same equations; :data:`VARIANTS` lists equivalent rewrites (must pass)
and planted porting bugs (must fail), some at the 1e-5 relative level.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.parity import generic_models as gm
from unirep_port.porting import tap
from unirep_port.tfstart import import_tensorflow

VOCAB, D, HEADS, FF, LAYERS, MAX_T = 25, 32, 4, 64, 2, 16
EPS = 1e-12  # the reference's LayerNorm epsilon (BERT's TF1 code)
EMBED_SCALE = 2.0  # embedding spread: LayerNorm inputs of variance ~4, as in trained encoders
NAMES, TIME_AXIS = ("hidden", "pooled"), (1, None)
# tap name -> (reference tensor, time axis)
TAPS = {f"layer{i}/{n}": (f"layer{i}/{n}:0", 1) for i in range(LAYERS) for n in ("ln1", "ln2")}

# name -> (kind, what): "rewrite" must pass, "bug" must fail
VARIANTS = {
    "fused_qkv": ("rewrite", "one fused QKV matmul, split after"),
    "mask_where": ("rewrite", "key padding by where(mask, s, -1e9), not + -1e4"),
    "scale_q_first": ("rewrite", "queries scaled by 1/sqrt(dh) before the score matmul"),
    "pool_einsum": ("rewrite", "masked mean as an einsum with weights 1/length"),
    "ln_eps_1e-5": ("bug", "LayerNorm epsilon 1e-5 instead of 1e-12"),
    "gelu_tanh": ("bug", "GELU's tanh approximation instead of erf"),
    "ln_var_unbiased": ("bug", "LayerNorm variance with n-1"),
    "heads_transposed": ("bug", "head split transposed (B, T, dh, h)"),
    "pool_over_padding": ("bug", "mean pooling over padding positions"),
    "bias_off_1e-4": ("bug", "feed-forward bias off by 1e-4"),
    "weights_float16": ("bug", "weights round-tripped through float16"),
}


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def n(*shape, s=1.0):
        return rng.normal(0, s / math.sqrt(shape[0]) if len(shape) > 1 else s, shape).astype(
            np.float32
        )

    w = {"embed": rng.normal(0, EMBED_SCALE, (VOCAB, D)).astype(np.float32)}
    w["pos"] = n(MAX_T, D, s=0.3)
    for i in range(LAYERS):
        for m in ("q", "k", "v", "o"):
            w[f"l{i}/w{m}"], w[f"l{i}/b{m}"] = n(D, D), n(D, s=0.1)
        w[f"l{i}/w1"], w[f"l{i}/b1"] = n(D, FF), n(FF, s=0.1)
        w[f"l{i}/w2"], w[f"l{i}/b2"] = n(FF, D), n(D, s=0.1)
        for k in ("1", "2"):
            w[f"l{i}/g{k}"] = (1 + rng.normal(0, 0.1, D)).astype(np.float32)
            w[f"l{i}/beta{k}"] = rng.normal(0, 0.1, D).astype(np.float32)
    return w


def reference(seed: int = 0):
    """The encoder as a ``tf.function(tokens (B, T) int32, lengths (B,) int32)``."""
    tf = import_tensorflow()
    w = {k: tf.Variable(v, name=k.replace("/", "_")) for k, v in _weights(seed).items()}

    def ln(x, g, b, name):
        mean, var = tf.nn.moments(x, [-1], keepdims=True)  # (B, T, 1) each
        return tf.identity((x - mean) * tf.math.rsqrt(var + EPS) * g + b, name=name)

    def heads(x):  # (B, T, D) -> (B, h, T, dh)
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        return tf.transpose(tf.reshape(x, [b, t, HEADS, D // HEADS]), [0, 2, 1, 3])

    @tf.function(autograph=False)
    def ref(tokens, lengths):
        b, t = tf.shape(tokens)[0], tf.shape(tokens)[1]
        mask = tf.sequence_mask(lengths, t, dtype=tf.float32)  # (B, T)
        x = tf.gather(w["embed"], tokens) + w["pos"][:t]  # (B, T, D)
        for i in range(LAYERS):
            with tf.name_scope(f"layer{i}"):
                q, k, v = (heads(x @ w[f"l{i}/w{m}"] + w[f"l{i}/b{m}"]) for m in "qkv")
                s = tf.matmul(q, k, transpose_b=True) / math.sqrt(D // HEADS)  # (B, h, T, T)
                s += (1.0 - mask[:, None, None, :]) * -1e4
                o = tf.matmul(tf.nn.softmax(s), v)  # (B, h, T, dh)
                o = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, t, D])
                x = ln(
                    x + o @ w[f"l{i}/wo"] + w[f"l{i}/bo"], w[f"l{i}/g1"], w[f"l{i}/beta1"], "ln1"
                )
                h = x @ w[f"l{i}/w1"] + w[f"l{i}/b1"]  # (B, T, FF)
                h = 0.5 * h * (1.0 + tf.math.erf(h / math.sqrt(2.0)))
                x = ln(
                    x + h @ w[f"l{i}/w2"] + w[f"l{i}/b2"], w[f"l{i}/g2"], w[f"l{i}/beta2"], "ln2"
                )
        pooled = tf.reduce_sum(x * mask[..., None], 1) / tf.cast(lengths, tf.float32)[:, None]
        return x, pooled

    ref.variables_by_name = w  # what generic_models.weights_of reads
    return ref


def example_inputs(rng: np.random.Generator, n: int, t: int = MAX_T, batch: int = 3):
    """``n`` batches ``(tokens (B, T) int32, lengths (B,) int32)``, first row full length."""
    return gm.example_tokens(rng, n, t, batch)


def port(w: dict[str, np.ndarray], variant: str | None = None):
    """The JAX port: ``fn(tokens, lengths) -> (hidden (B, T, D), pooled (B, D))``."""
    if variant == "weights_float16":
        w = {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()}
    w = {k: jnp.asarray(v) for k, v in w.items()}
    eps = 1e-5 if variant == "ln_eps_1e-5" else EPS
    dh = D // HEADS

    def ln(x, g, b, name):
        mean = x.mean(-1, keepdims=True)
        ddof = 1 if variant == "ln_var_unbiased" else 0
        var = x.var(-1, keepdims=True, ddof=ddof)  # (B, T, 1)
        return tap(name, (x - mean) * jax.lax.rsqrt(var + eps) * g + b)

    def heads(x):  # (B, T, D) -> (B, h, T, dh)
        if variant == "heads_transposed":
            return x.reshape(*x.shape[:2], dh, HEADS).transpose(0, 3, 1, 2)
        return x.reshape(*x.shape[:2], HEADS, dh).transpose(0, 2, 1, 3)

    def attention(x, i, mask):
        if variant == "fused_qkv":
            wqkv = jnp.concatenate([w[f"l{i}/w{m}"] for m in "qkv"], 1)  # (D, 3D)
            bqkv = jnp.concatenate([w[f"l{i}/b{m}"] for m in "qkv"])
            q, k, v = map(heads, jnp.split(x @ wqkv + bqkv, 3, -1))
        else:
            q, k, v = (heads(x @ w[f"l{i}/w{m}"] + w[f"l{i}/b{m}"]) for m in "qkv")
        if variant == "scale_q_first":
            s = (q * (1 / math.sqrt(dh))) @ k.swapaxes(-1, -2)  # (B, h, T, T)
        else:
            s = q @ k.swapaxes(-1, -2) / math.sqrt(dh)  # (B, h, T, T)
        if variant == "mask_where":
            s = jnp.where(mask[:, None, None, :] > 0, s, -1e9)
        else:
            s = s + (1.0 - mask[:, None, None, :]) * -1e4
        o = jax.nn.softmax(s, -1) @ v  # (B, h, T, dh)
        return o.transpose(0, 2, 1, 3).reshape(x.shape) @ w[f"l{i}/wo"] + w[f"l{i}/bo"]

    def gelu(h):
        if variant == "gelu_tanh":
            return jax.nn.gelu(h, approximate=True)
        return 0.5 * h * (1.0 + jax.scipy.special.erf(h / math.sqrt(2.0)))

    @jax.jit
    def fn(tokens, lengths):
        t = tokens.shape[1]
        mask = (jnp.arange(t)[None, :] < lengths[:, None]).astype(jnp.float32)  # (B, T)
        x = w["embed"][tokens] + w["pos"][:t]  # (B, T, D)
        for i in range(LAYERS):
            x = ln(x + attention(x, i, mask), w[f"l{i}/g1"], w[f"l{i}/beta1"], f"layer{i}/ln1")
            b1 = w[f"l{i}/b1"] + (1e-4 if variant == "bias_off_1e-4" else 0.0)
            h = gelu(x @ w[f"l{i}/w1"] + b1) @ w[f"l{i}/w2"] + w[f"l{i}/b2"]
            x = ln(x + h, w[f"l{i}/g2"], w[f"l{i}/beta2"], f"layer{i}/ln2")
        if variant == "pool_over_padding":
            return x, x.mean(1)
        if variant == "pool_einsum":
            weights = mask / lengths[:, None].astype(jnp.float32)  # (B, T)
            return x, jnp.einsum("bt,btd->bd", weights, x)
        return x, (x * mask[..., None]).sum(1) / lengths[:, None].astype(jnp.float32)

    return fn
