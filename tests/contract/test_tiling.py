"""Tile plans: every output unit written by exactly one tile, from a window of one shape that lies inside the
input, starts on the alignment and holds the tile's core with its halo (or meets the input's edge)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.tiling import TilePlan, spans


@given(
    codes=st.integers(1, 40),
    core_codes=st.integers(1, 6),
    halo_codes=st.integers(0, 4),
    stride=st.sampled_from([1, 2, 4, 8]),
)
def test_encoder_spans_cover_every_code_once_with_their_halo(
    codes: int, core_codes: int, halo_codes: int, stride: int
) -> None:
    length, core, halo = codes * stride, core_codes * stride, halo_codes * stride
    found = spans(length, core=core, halo=halo, align=stride, scale=Fraction(1, stride))
    written = np.zeros(codes, int)
    for span in found:
        written[span.into] += 1
        assert span.keep.stop - span.keep.start == span.into.stop - span.into.start
        assert span.window.start >= 0 and span.window.stop <= length and span.window.start % stride == 0
        if len(found) > 1:  # one window shape for all, so that the tiles of a request batch together
            assert span.window.stop - span.window.start == core + 2 * halo
        own = slice(span.into.start * stride, span.into.stop * stride)  # the pixels of the codes kept
        assert own.start - span.window.start >= min(halo, own.start)  # the halo, or the input's edge
        assert span.window.stop - own.stop >= min(halo, length - own.stop)
    assert written.tolist() == [1] * codes


def test_a_decoder_plan_places_each_tile_where_the_whole_output_has_it() -> None:
    codes = np.arange(2 * 11 * 7).reshape(2, 11, 7)
    plan = TilePlan(11, 7, core=3, halo=2, align=1, scale=Fraction(4))
    assert not plan.single
    outputs = None
    for tile in plan.tiles():
        window = plan.window(codes, tile)
        assert window.shape == (2, 7, 7)
        outputs = plan.place(outputs, [np.repeat(np.repeat(window, 4, -2), 4, -1)], tile)  # 4x nearest upsampling
    assert np.array_equal(outputs[0], np.repeat(np.repeat(codes, 4, -2), 4, -1))


def test_a_misaligned_halo_is_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        spans(64, core=8, halo=6, align=4, scale=Fraction(1, 4))
