"""The original TF1 release layouts: a folder of ``.npy`` files, and a ``tf.train.Saver`` ckpt.

* ``tf1-npy``: one ``<TF variable name, '/' -> '_'>:0.npy`` file per variable, exactly what
  ``dump_weights`` wrote (mirrors unirep.py L480-492) and what the ``__init__`` of the models loads
  (unirep.py L83-91 for 1900, L249 ff. for the stacks), e.g. ``rnn_mlstm_mlstm_wx:0.npy``.
* ``tf1-ckpt``: a folder holding one TF checkpoint (``*.index`` + ``*.data-*``) whose variables
  carry the canonical names (``rnn/mlstm/mlstm/wx``). TensorFlow is imported only in here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unirep_port.sizes import SIZES, detect_size, expected_shapes
from unirep_port.weights.errors import WeightsError

CKPT_NAME = "model.ckpt"
# Non-model variables a training checkpoint of the original graph may carry (optimizer state).
_TRAINING_ONLY = ("global_step", "beta1_power", "beta2_power")


def npy_filename(key: str) -> str:
    """The file ``dump_weights`` wrote for a canonical key, e.g. ``rnn_mlstm_mlstm_wx:0.npy``."""
    return key.replace("/", "_") + ":0.npy"


def _all_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for size in SIZES:
        for key in expected_shapes(size):
            names[npy_filename(key)] = key
    return names


def read_npy(path: Path, size: int | None = None, allow_pickle: bool = False) -> dict:
    """Read a ``tf1-npy`` folder; every expected file must be there (error names the missing ones).

    Args:
        path: the folder.
        size: the model size, or None to tell it from the files present.
        allow_pickle: ignored; ``.npy`` files are always read with ``allow_pickle=False``.
    """
    if not path.is_dir():
        raise WeightsError(f"{path}: a tf1-npy weights folder must be a directory")
    known = _all_names()
    params: dict[str, np.ndarray] = {}
    for f in sorted(path.glob("*.npy")):
        key = known.get(f.name, f.name)  # an unknown file stays visible as an unexpected key
        try:
            with open(f, "rb") as fh:
                params[key] = np.load(fh, allow_pickle=False)
        except Exception as exc:  # truncated, not an .npy, or an object array
            raise WeightsError(f"{f}: cannot read .npy file ({exc})") from exc
    if size is None:
        try:
            size = detect_size({k: v.shape for k, v in params.items()})
        except ValueError:
            raise WeightsError(
                f"{path}: cannot tell the model size; expected e.g. "
                f"{npy_filename('fully_connected/weights')} (found {len(params)} .npy files)"
            ) from None
    missing = [npy_filename(k) for k in expected_shapes(size) if k not in params]
    if missing:
        raise WeightsError(f"{path}: missing weight file(s): {', '.join(missing)}")
    return params


def write_npy(params: dict[str, np.ndarray], path: Path) -> None:
    """Write one ``<name>:0.npy`` per key into the (existing, empty) folder ``path``."""
    for key, arr in params.items():
        np.save(path / npy_filename(key), np.asarray(arr), allow_pickle=False)


def _tf():
    from unirep_port.tfstart import import_tensorflow

    try:
        tf = import_tensorflow()
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise WeightsError(
            "the tf1-ckpt format needs TensorFlow: pip install 'unirep-port[reference]'"
        ) from exc
    return tf


def checkpoint_prefix(path: Path) -> str:
    """The checkpoint prefix for a folder holding one checkpoint, or for a prefix path itself."""
    if path.is_dir():
        found = sorted(path.glob("*.index"))
        if len(found) != 1:
            raise WeightsError(
                f"{path}: expected exactly one *.index checkpoint, found {len(found)}"
            )
        return str(found[0])[: -len(".index")]
    if Path(str(path) + ".index").is_file():
        return str(path)
    raise WeightsError(f"{path}: not a TF checkpoint (no {path.name}.index)")


def read_ckpt(path: Path, size: int | None = None, allow_pickle: bool = False) -> dict:
    """Read the variables of a TF1 checkpoint (optimizer slots and counters are skipped)."""
    prefix = checkpoint_prefix(path)
    tf = _tf()
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read TF checkpoint ({exc})") from exc
    params = {}
    for name in sorted(names):
        if name in _TRAINING_ONLY or "/Adam" in name or name.endswith("/Momentum"):
            continue
        params[name] = np.asarray(reader.get_tensor(name))
    return params


def write_ckpt(params: dict[str, np.ndarray], path: Path) -> None:
    """Save ``params`` as ``tf.compat.v1`` variables with a ``Saver`` into the folder ``path``."""
    tf = _tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        feeds, variables = {}, []
        for key, arr in params.items():
            ph = v1.placeholder(tf.as_dtype(arr.dtype), shape=arr.shape)
            variables.append(v1.Variable(ph, name=key, trainable=True))
            feeds[ph] = arr
        bad = [v.op.name for v in variables if v.op.name not in params]
        if bad:  # TF renames clashing op names (e.g. "x_1"); never expected with canonical keys
            raise WeightsError(f"{path}: TensorFlow renamed variables {bad}")
        saver = v1.train.Saver(var_list=variables, save_relative_paths=True)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.variables_initializer(variables), feed_dict=feeds)
            saver.save(sess, str(path / CKPT_NAME), write_meta_graph=False)
