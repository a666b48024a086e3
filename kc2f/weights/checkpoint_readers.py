"""Readers of checkpoint files on local disk into flat `{key: numpy array}` dicts.

Three formats, all local (nothing is downloaded):

- `.safetensors` (https://github.com/huggingface/safetensors): an 8-byte
  little-endian header length, a JSON header mapping each tensor name to its
  `dtype`, `shape` and `data_offsets` into the byte buffer that follows, then the
  raw little-endian tensors. Read here with `json` + NumPy, so neither the
  `safetensors` package nor torch is needed; BF16 (which NumPy lacks) is widened
  to float32 exactly.
- `.npz`: `numpy.savez` archives of a state dict (`np.savez(path, **{k: v.numpy()})`).
- `.pth` / `.pt` / `.bin`: PyTorch pickles, read with `torch.load(weights_only=True)`
  only when torch is importable.

State dicts nested under `"model"` or `"state_dict"` (DeiT's and many training
scripts' releases) are unwrapped.
"""

import json
import os
import pathlib
import pickle
import struct

import numpy as np

# safetensors dtype tag -> NumPy dtype (little-endian, as the format prescribes).
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
# A header larger than this is not a safetensors file (the reference reader caps it too).
_MAX_HEADER_BYTES = 100_000_000

# Set to 1 to let `read_torch` unpickle a checkpoint's non-tensor objects (code from the file).
TRUST_PICKLE_ENV = "KC2F_TRUST_PICKLE"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_safetensors(path):
    """Reads a `.safetensors` file into `{name: numpy array}`.

    Supports F64/F32/F16/BF16 and integer/bool tensors; BF16 becomes float32
    (exact: a bfloat16 is the top half of a float32).

    Args:
        path: the file.

    Returns:
        dict of arrays, in the header's order.

    Raises:
        ValueError: a malformed header or an unsupported dtype (naming the
            tensor and the file).
    """
    path = pathlib.Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"Not a safetensors file (shorter than its 8-byte header length). Received: path={path}")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(
            f"Not a safetensors file (header length {header_len} exceeds the file). Received: path={path}"
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Not a safetensors file (bad JSON header: {error}). Received: path={path}") from None
    buffer = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], tuple(info["shape"])
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(buffer):
            raise ValueError(
                f"Tensor '{name}' has data_offsets {info['data_offsets']} outside the data "
                f"buffer of {len(buffer)} bytes in {path}."
            )
        raw = buffer[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[dtype])
        else:
            raise ValueError(
                f"Tensor '{name}' in {path} has dtype {dtype}, which this reader does not "
                f"support (F64/F32/F16/BF16, integers, BOOL). Received: dtype={dtype!r}"
            )
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(
                f"Tensor '{name}' in {path} has {array.size} elements for shape {shape}."
            )
        # Copy out of the file's bytes so the result is writable and owns its memory.
        tensors[name] = array.reshape(shape).copy()
    return tensors


def read_npz(path):
    """Reads a `.npz` archive into `{name: numpy array}` (pickles refused)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def read_torch(path):
    """Reads a PyTorch `.pth` state dict with torch, when torch is importable.

    Raises:
        ImportError: torch is not installed; the message says how to convert the
            file to `.safetensors` / `.npz` on a machine that has torch.
    """
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading the PyTorch checkpoint {path} needs torch, which is not installed. "
            "Install torch, or convert the file once where torch is available, e.g. "
            "`python -c \"import torch, numpy as np; sd = torch.load('in.pth', map_location='cpu'); "
            "sd = sd.get('model', sd); np.savez('out.npz', **{k: v.float().numpy() for k, v in "
            "sd.items()})\"` (or save it with safetensors.torch.save_file as .safetensors)."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only.
        state = torch.load(path, map_location="cpu")
    except pickle.UnpicklingError as error:
        # A Lightning `.ckpt` also pickles hyper-parameters, callbacks and loop state, which
        # torch's safe loader refuses. Unpickling them runs code from the file: only on request.
        if os.environ.get(TRUST_PICKLE_ENV) != "1":
            raise ValueError(
                f"{path} holds Python objects besides tensors (e.g. a Lightning checkpoint's "
                f"hyper-parameters), which torch's safe loader refuses ({str(error).splitlines()[0]}). Loading "
                f"them runs code from the file: if you trust it, set {TRUST_PICKLE_ENV}=1 and run again, or "
                "convert its state_dict to .safetensors / .npz."
            ) from None
        state = torch.load(path, map_location="cpu", weights_only=False)
    state = unwrap_state_dict(state, path)
    return {
        name: value.detach().float().numpy() if value.is_floating_point() else value.detach().numpy()
        for name, value in state.items()
        if hasattr(value, "detach")
    }


def unwrap_state_dict(state, path):
    """Returns the state dict inside a `{"model": ...}` / `{"state_dict": ...}` wrapper."""
    if not isinstance(state, dict):
        raise ValueError(f"Expected a state dict (a mapping of names to tensors) in {path}. Received: {type(state)}")
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(state.get(wrapper), dict):
            return state[wrapper]
    return state


def checkpoint_keys(path):
    """The tensor names of a checkpoint file, reading no more than it must: a `.safetensors` header,
    a `.npz` archive's directory; a PyTorch file is loaded whole (`read_checkpoint`).

    Raises:
        as `read_checkpoint`.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors" and path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ValueError(f"Not a safetensors file (shorter than its 8-byte header length). Received: "
                                 f"path={path}")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER_BYTES:
                raise ValueError(f"Not a safetensors file (header length {header_len}). Received: path={path}")
            header = json.loads(handle.read(header_len))
        return [name for name in header if name != "__metadata__"]
    if suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    return list(read_checkpoint(path))


def read_checkpoint(path):
    """Reads a `.safetensors`, `.npz` or PyTorch checkpoint into `{key: array}`.

    Args:
        path: a local file.

    Returns:
        dict of NumPy arrays keyed as in the file (wrappers removed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown suffix.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors(path)
    if suffix == ".npz":
        return unwrap_state_dict(read_npz(path), path)
    if suffix in TORCH_SUFFIXES:
        return read_torch(path)
    raise ValueError(
        "Unknown checkpoint format; expected .safetensors, .npz, .pth/.pt/.bin, .keras or a "
        f"kc2f run directory. Received: path={path}"
    )
