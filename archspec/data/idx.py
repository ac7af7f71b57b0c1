"""Reader for the IDX format of the MNIST files (raw or gzipped), checking header and size."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from archspec.errors import DataError

# IDX type codes (third byte of the magic number) and the big-endian numpy types they denote.
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped when its name ends in ``.gz``) into a read-only array.

    The array has the shape the header gives, e.g. ``(60000, 28, 28)`` uint8 for MNIST
    training images. Raises DataError naming the file when it cannot be read, is not a
    valid gzip stream, or its header or size is wrong.
    """
    return parse_idx(read_file_bytes(path), source=str(path))


def read_file_bytes(path: str | Path) -> bytes:
    """The content of ``path``, decompressed when the name ends in ``.gz``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: expected a readable file, received {error.strerror}") from None
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        # EOFError is what a truncated gzip stream raises; BadGzipFile (an OSError) a foreign one.
        raise DataError(f"{path}: expected a complete gzip stream, received {error} (corrupt or truncated)") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file into a read-only array in native byte order."""
    if len(data) < 4:
        raise DataError(f"{source}: expected an IDX header of at least 4 bytes, received {len(data)} bytes (truncated)")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise DataError(
            f"{source}: expected an IDX magic number 0x0000TTDD (TT a type code 0x08..0x0E, "
            f"DD >= 1 dimensions), received 0x{magic:08X} (not an IDX file)"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: expected a {header_size}-byte IDX header for {ndim} dimensions, "
            f"received {len(data)} bytes (truncated)"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_TYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    received = len(data) - header_size
    if received != expected:
        what = "truncated" if received < expected else "trailing bytes"
        raise DataError(
            f"{source}: expected {expected} data bytes for shape {shape} of {dtype.name}, "
            f"received {received} bytes ({what})"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
        array.setflags(write=False)
    return array.reshape(shape)
