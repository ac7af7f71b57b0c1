"""IDX parsing: good files of several types, and every kind of broken file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from archspec.data import read_idx
from archspec.data.idx import parse_idx
from archspec.errors import DataError


def test_reads_uint8_images_raw_and_gzipped(tmp_path, to_idx):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(to_idx(images))
    (tmp_path / "a.gz").write_bytes(gzip.compress(to_idx(images)))
    for name in ("a", "a.gz"):
        array = read_idx(tmp_path / name)
        assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
        np.testing.assert_array_equal(array, images)
        assert not array.flags.writeable


def test_big_endian_int32_becomes_native():
    values = np.array([1, -2, 70000], dtype=">i4")
    array = parse_idx(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + values.tobytes())
    assert array.dtype.isnative and array.dtype.kind == "i"
    assert array.tolist() == [1, -2, 70000]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "received 0 bytes (truncated)"),
        (b"\x00\x00\x08", "received 3 bytes (truncated)"),
        (b"PK\x03\x04" + bytes(20), "received 0x504B0304 (not an IDX file)"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "received 0x00000701 (not an IDX file)"),
        (bytes([0, 0, 0x08, 0]), "not an IDX file"),
        (bytes([0, 0, 0x08, 3, 0, 0, 0, 2]), "expected a 16-byte IDX header for 3 dimensions"),
        (
            bytes([0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2, 3]),
            "expected 4 data bytes for shape (4,) of uint8, received 3 bytes (truncated)",
        ),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3]), "received 3 bytes (trailing bytes)"),
    ],
)
def test_broken_idx_names_file_and_problem(tmp_path, content, expected):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_idx(path)
    message = str(error.value)
    assert message.startswith(f"{path}: expected")
    assert expected in message
    assert "\n" not in message


def test_not_gzip_and_truncated_gzip(tmp_path, to_idx):
    data = gzip.compress(to_idx(np.zeros((10, 28, 28), dtype=np.uint8)))
    (tmp_path / "plain.gz").write_bytes(b"this is not gzip")
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    for name in ("plain.gz", "cut.gz"):
        expected = r"expected a complete gzip stream.*corrupt or truncated"
        with pytest.raises(DataError, match=expected):
            read_idx(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothing-here: expected a readable file"):
        read_idx(tmp_path / "nothing-here")
