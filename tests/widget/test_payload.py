"""The binary payloads the page receives: packed coordinates and colour-by columns."""

from __future__ import annotations

import numpy as np
import pytest

from samplelens_widget.protocol.buffers import encode_colors, pack_coords


def test_pack_coords_is_float32_little_endian_and_small():
    coords = np.random.default_rng(0).standard_normal((100_000, 2))
    data = pack_coords(coords)
    assert len(data) == 800_000 <= 2 * 1024 * 1024
    np.testing.assert_array_equal(
        np.frombuffer(data, "<f4").reshape(-1, 2), coords.astype(np.float32)
    )
    with pytest.raises(ValueError, match=r"coords: expected an \(N, 2\) array"):
        pack_coords(np.zeros((3, 3)))


def test_encode_colors():
    c = encode_colors(["b", "a", "b"], 3, "metadata['kind']")
    assert c["kind"] == "category" and c["categories"] == ["a", "b"] and c["dtype"] == "uint8"
    assert np.frombuffer(c["data"], np.uint8).tolist() == [1, 0, 1]
    c = encode_colors(np.array([3, 1, 3, 7]), 4)
    assert c["categories"] == [1, 3, 7]
    v = encode_colors([0.5, float("nan"), 2.0], 3)
    assert v["kind"] == "value" and v["min"] == 0.5 and v["max"] == 2.0
    assert np.isnan(np.frombuffer(v["data"], "<f4")[1])
    many = encode_colors(np.arange(1000), 1000)
    assert many["kind"] == "value"
    with pytest.raises(ValueError, match=r"metadata\['x'\]: has 2 values; the slice has 3"):
        encode_colors([1, 2], 3, "metadata['x']")
    with pytest.raises(TypeError, match=r"metadata: values of type\(s\) \['dict'\]"):
        encode_colors([{}, {}], 2, "metadata")
    with pytest.raises(ValueError, match="metadata: expected one value per sample"):
        encode_colors(np.zeros((2, 2)), 2, "metadata")
