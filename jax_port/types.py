"""jaxtyping aliases for the arrays of the port (named once so annotations stay readable).

Axis names: ``batch`` (B), ``time`` (T), ``hidden`` (H), ``four_h`` (4H), ``n_in`` (a cell's
input width: 10 for layer 0, H above), ``n_out`` (a matrix's output width), ``vocab`` (26
tokens), ``emb`` (10), ``out`` (25 logits). ``*batch`` is any number of leading axes (the
training path runs a cell's input products over a (K, B) block at once).

Two matrix layouts exist, and the aliases name which one they mean:

* TF layout, ``x @ w``, (n_in, n_out): the parameters (:class:`jax_port.params.CellParams`),
  training, and weight normalisation. Aliases ``In4H``, ``InH``, ``H4H``, ``HH``, ``Mat``.
* Transposed, (n_out, n_in): the inference path's weight-normalised cells
  (:class:`jax_port.model.Prepared`, ``cell.matmul(..., out_in=True)``). Aliases ``FourHIn``,
  ``HIn``, ``FourHH``, ``MatT`` (``HH`` is square, so it names both layouts of ``wmh``).

Array kinds: plain aliases are ``jax.Array`` (tracers included: under ``jit`` they are checked at
trace time). ``Xp*`` aliases also accept ``numpy.ndarray``, for the functions that take an ``xp``
namespace (the float64 host preparation of ``model.prepare_host``), the pytrees they fill, and
the public entry points that take host token arrays (``forward``, the evotune loss).

Stacked layers: the skewed loop of the narrow models (``model.skewed_loop``) runs every layer's
step as one batched product over a leading ``layers`` axis (the matrices of several layers
stacked, ``model.Stack``). The ``L*`` aliases are the cell step's arrays with any number of
leading ``layers`` axes (none: one layer, the plain aliases' shapes).

The annotations are checked in ``tests/test_types.py`` (``jaxtyping.install_import_hook`` with
beartype, in a subprocess); production imports never check them.
"""

import numpy as np
from jaxtyping import Array, Bool, Float, Int

XpArray = Array | np.ndarray  # a jax array or a host numpy array (``xp`` is jnp or numpy)

# Activations (jax).
BH = Float[Array, "batch hidden"]
B4H = Float[Array, "batch four_h"]
BIn = Float[Array, "batch n_in"]
BTH = Float[Array, "batch time hidden"]
BTO = Float[Array, "batch time out"]
XIn = Float[Array, "*batch n_in"]
XH = Float[Array, "*batch hidden"]
XO = Float[Array, "*batch out"]
XOut = Float[Array, "*batch n_out"]

# Matrices, TF layout (n_in, n_out) (jax).
InH = Float[Array, "n_in hidden"]
In4H = Float[Array, "n_in four_h"]
HH = Float[Array, "hidden hidden"]
H4H = Float[Array, "hidden four_h"]
HO = Float[Array, "hidden out"]
VH = Float[Array, "vocab hidden"]
V4H = Float[Array, "vocab four_h"]
VE = Float[Array, "vocab emb"]
Mat = Float[Array, "n_in n_out"]

# Matrices, transposed layout (n_out, n_in) (jax; the inference path, ``out_in=True``).
HIn = Float[Array, "hidden n_in"]
FourHIn = Float[Array, "four_h n_in"]
FourHH = Float[Array, "four_h hidden"]
MatT = Float[Array, "n_out n_in"]

# A cell step's arrays over any leading ``layers`` axes (one layer: none; ``model.Stack``).
LBH = Float[Array, "*layers batch hidden"]
LB4H = Float[Array, "*layers batch four_h"]
LBIn = Float[Array, "*layers batch n_in"]
LHH = Float[Array, "*layers hidden hidden"]
LH4H = Float[Array, "*layers hidden four_h"]
LFourHH = Float[Array, "*layers four_h hidden"]
LMat = Float[Array, "*layers n_in n_out"]
LMatT = Float[Array, "*layers n_out n_in"]
LBias4H = Float[Array, "layers 1 four_h"]  # stacked biases, broadcast over the batch axis

# Vectors (jax).
VecH = Float[Array, " hidden"]
Vec4H = Float[Array, " four_h"]
VecO = Float[Array, " out"]
VecOut = Float[Array, " n_out"]

# Any shape (jax).
AnyF = Float[Array, "..."]
AnyI = Int[Array, "..."]
AnyE = Float[Array, "... emb"]
AnyH = Float[Array, "... hidden"]

# Tokens and masks (jax).
TokBT = Int[Array, "batch time"]
TokB = Int[Array, " batch"]
LenB = Int[Array, " batch"]
MaskB = Bool[Array, " batch"]

# Jax or host numpy (functions taking ``xp``, the pytrees they fill, host inputs).
XpBIn = Float[XpArray, "*batch n_in"]
XpB4H = Float[XpArray, "*batch four_h"]
XpBH = Float[XpArray, "*batch hidden"]
XpInH = Float[XpArray, "n_in hidden"]
XpIn4H = Float[XpArray, "n_in four_h"]
XpHH = Float[XpArray, "hidden hidden"]
XpH4H = Float[XpArray, "hidden four_h"]
XpHO = Float[XpArray, "hidden out"]
XpVH = Float[XpArray, "vocab hidden"]
XpV4H = Float[XpArray, "vocab four_h"]
XpVE = Float[XpArray, "vocab emb"]
XpMat = Float[XpArray, "n_in n_out"]
XpVecH = Float[XpArray, " hidden"]
XpVec4H = Float[XpArray, " four_h"]
XpVecO = Float[XpArray, " out"]
XpVecOut = Float[XpArray, " n_out"]
XpTok = Int[XpArray, "*batch"]
XpE = Float[XpArray, "*batch emb"]
XpTokBT = Int[XpArray, "batch time"]
XpLenB = Int[XpArray, " batch"]
