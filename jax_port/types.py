"""jaxtyping aliases for the arrays of the port (named once so annotations stay readable).

Axis names: ``batch`` (B), ``time`` (T), ``hidden`` (H), ``four_h`` (4H), ``n_in`` (a cell's
input width: 10 for layer 0, H above), ``vocab`` (26 tokens), ``emb`` (10), ``out`` (25 logits).
"""

from jaxtyping import Array, Bool, Float, Int

BH = Float[Array, "batch hidden"]
B4H = Float[Array, "batch four_h"]
BIn = Float[Array, "batch n_in"]
BTH = Float[Array, "batch time hidden"]
BTO = Float[Array, "batch time out"]
InH = Float[Array, "n_in hidden"]
In4H = Float[Array, "n_in four_h"]
HH = Float[Array, "hidden hidden"]
H4H = Float[Array, "hidden four_h"]
HO = Float[Array, "hidden out"]
VH = Float[Array, "vocab hidden"]
V4H = Float[Array, "vocab four_h"]
VE = Float[Array, "vocab emb"]
VecH = Float[Array, " hidden"]
Vec4H = Float[Array, " four_h"]
VecO = Float[Array, " out"]
Mat = Float[Array, "n_in n_out"]
VecOut = Float[Array, " n_out"]
AnyF = Float[Array, "..."]
AnyI = Int[Array, "..."]
AnyE = Float[Array, "... emb"]
TokBT = Int[Array, "batch time"]
TokB = Int[Array, " batch"]
LenB = Int[Array, " batch"]
MaskB = Bool[Array, " batch"]
AnyH = Float[Array, "... hidden"]
