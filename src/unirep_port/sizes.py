"""The model-size table and the canonical parameter names.

Canonical names are the TensorFlow variable names of the original graphs (the names the original
``dump_weights`` flattened into ``<name with / as _>:0.npy`` files):

* ``embed_matrix`` (26, 10), the token embedding;
* one mLSTM cell per layer, under ``rnn/mlstm/mlstm/`` for the 1900 model and
  ``rnn/mlstm_stack/mlstm_stack{i}/mlstm_stack{i}/`` for layer ``i`` of the 256 and 64 stacks,
  each with ``wx wh wmx wmh b gx gh gmx gmh``;
* ``fully_connected/weights`` (hidden, 25) and ``fully_connected/biases`` (25,), the logit layer.

Shapes of one cell with input width ``n_in`` and hidden size ``H`` (TF layout, ``x @ w``):
``wx (n_in, 4H)``, ``wh (H, 4H)``, ``wmx (n_in, H)``, ``wmh (H, H)``, ``b (4H,)``,
``gx (4H,)``, ``gh (4H,)``, ``gmx (H,)``, ``gmh (H,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unirep_port.alphabet import N_OUTPUTS, VOCAB_SIZE

EMBED_DIM = 10
CELL_PARAMS = ("wx", "wh", "wmx", "wmh", "b", "gx", "gh", "gmx", "gmh")
EMBED_KEY = "embed_matrix"
DENSE_W_KEY = "fully_connected/weights"
DENSE_B_KEY = "fully_connected/biases"


@dataclass(frozen=True)
class ModelSize:
    """One published UniRep model: hidden width and number of stacked mLSTM cells."""

    hidden: int
    n_layers: int

    def cell_prefix(self, layer: int) -> str:
        """Variable-scope prefix of one cell, e.g. ``rnn/mlstm/mlstm/`` (1900)."""
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} out of range for a {self.n_layers}-layer model")
        if self.n_layers == 1:
            return "rnn/mlstm/mlstm/"
        return f"rnn/mlstm_stack/mlstm_stack{layer}/mlstm_stack{layer}/"

    def cell_key(self, layer: int, name: str) -> str:
        return self.cell_prefix(layer) + name


SIZES: dict[int, ModelSize] = {
    1900: ModelSize(hidden=1900, n_layers=1),
    256: ModelSize(hidden=256, n_layers=4),
    64: ModelSize(hidden=64, n_layers=4),
}


def get_size(size: int | str) -> ModelSize:
    """The table row for ``size`` (1900, 256 or 64), with a clear error otherwise."""
    try:
        return SIZES[int(size)]
    except (KeyError, ValueError):
        raise ValueError(
            f"unknown model size {size!r}; published sizes are 1900, 256, 64"
        ) from None


def expected_shapes(size: int | str) -> dict[str, tuple[int, ...]]:
    """Canonical key -> shape for every parameter of a model size (all float32)."""
    m = get_size(size)
    h = m.hidden
    shapes: dict[str, tuple[int, ...]] = {EMBED_KEY: (VOCAB_SIZE, EMBED_DIM)}
    for layer in range(m.n_layers):
        n_in = EMBED_DIM if layer == 0 else h
        cell = {
            "wx": (n_in, 4 * h),
            "wh": (h, 4 * h),
            "wmx": (n_in, h),
            "wmh": (h, h),
            "b": (4 * h,),
            "gx": (4 * h,),
            "gh": (4 * h,),
            "gmx": (h,),
            "gmh": (h,),
        }
        for name in CELL_PARAMS:
            shapes[m.cell_key(layer, name)] = cell[name]
    shapes[DENSE_W_KEY] = (h, N_OUTPUTS)
    shapes[DENSE_B_KEY] = (N_OUTPUTS,)
    return shapes


def param_keys(size: int | str) -> list[str]:
    """Canonical keys of a model size in a stable order."""
    return list(expected_shapes(size))


def detect_size(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Guess the model size from canonical keys and shapes (the logit layer's input width).

    Raises ValueError naming what is missing when no size fits.
    """
    if DENSE_W_KEY in shapes and len(shapes[DENSE_W_KEY]) == 2:
        h = int(shapes[DENSE_W_KEY][0])
        if h in SIZES:
            return h
    for size, m in SIZES.items():
        key = m.cell_key(0, "wmh")
        if key in shapes and tuple(shapes[key]) == (m.hidden, m.hidden):
            return size
    raise ValueError(
        "cannot tell the model size: no 'fully_connected/weights' of shape (1900|256|64, 25) "
        "and no recognisable first-layer 'wmh'"
    )
