"""Conversion between kino.v1.Tensor and NumPy arrays, with the validation every service needs.

A Tensor on the wire is little-endian, C-contiguous bytes with a dtype and a shape. Anything that
disagrees (byte length, dtype, rank, NaN/Inf) is the caller's mistake: INVALID_ARGUMENT, INVALID_TENSOR.
"""

from __future__ import annotations

import math

import numpy as np

from kino.v1 import common_pb2
from services.common.errors import invalid_argument

_NUMPY_BY_DTYPE = {
    common_pb2.DTYPE_FLOAT32: np.dtype("<f4"),
    common_pb2.DTYPE_FLOAT16: np.dtype("<f2"),
    common_pb2.DTYPE_UINT8: np.dtype("u1"),
    common_pb2.DTYPE_INT16: np.dtype("<i2"),
    common_pb2.DTYPE_INT32: np.dtype("<i4"),
    common_pb2.DTYPE_INT64: np.dtype("<i8"),
}
_DTYPE_BY_NUMPY = {v.newbyteorder("<") if v.itemsize > 1 else v: k for k, v in _NUMPY_BY_DTYPE.items()}
MAX_ELEMENTS = 1 << 31
MAX_DIMENSIONS = 32


def to_proto(array: np.ndarray) -> common_pb2.Tensor:
    """Packs an array (float32, float16, uint8, int16, int32 or int64) into a Tensor."""
    array = np.asarray(array)
    wire = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    dtype = _DTYPE_BY_NUMPY.get(wire)
    if dtype is None:
        raise TypeError(f"no kino.v1.DType for numpy dtype {array.dtype}")
    data = np.ascontiguousarray(array, dtype=wire).tobytes()
    return common_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=data)


def from_proto(
    tensor: common_pb2.Tensor,
    *,
    field: str,
    dtype: np.dtype | str | None = None,
    ndim: int | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Unpacks and validates a Tensor; the returned array is read-only and native-endian.

    field names the request field in error messages; dtype and ndim, when given, are required.
    """

    def bad(detail: str):
        return invalid_argument("INVALID_TENSOR", f"{field}: {detail}", field=field, detail=detail)

    np_dtype = _NUMPY_BY_DTYPE.get(tensor.dtype)
    if np_dtype is None:
        raise bad(
            f"unsupported dtype {common_pb2.DType.Name(tensor.dtype) if tensor.dtype in common_pb2.DType.values() else tensor.dtype}"
        )
    if dtype is not None and np_dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        raise bad(f"dtype must be {np.dtype(dtype).name}, got {np_dtype.name}")
    if len(tensor.shape) > MAX_DIMENSIONS:  # before any message quotes the shape
        raise bad(f"{len(tensor.shape)} dimensions; the limit is {MAX_DIMENSIONS}")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise bad(f"negative dimension in shape {shape}")
    if ndim is not None and len(shape) != ndim:
        raise bad(f"expected {ndim} dimensions, got shape {shape}")
    # A zero-length dimension does not make the others harmless: NumPy refuses a (0, 2**40, 2**40) array.
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise bad(f"shape {shape} has too many elements")
    expected = math.prod(shape) * np_dtype.itemsize
    if len(tensor.data) != expected:
        raise bad(f"shape {shape} of {np_dtype.name} needs {expected} bytes, got {len(tensor.data)}")
    array = np.frombuffer(tensor.data, dtype=np_dtype).reshape(shape)
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise bad("contains NaN or Inf")
    return array.astype(np_dtype.newbyteorder("="), copy=False)
