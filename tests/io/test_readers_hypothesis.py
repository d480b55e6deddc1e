"""Whatever bytes a file holds, the readers either return a document or raise InputError (exit 2): never
another exception (a traceback, exit 3). Hypothesis generates the bytes, with valid documents mixed in."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnmilp.errors import InputError
from bnnmilp.io.npz import read_npz
from bnnmilp.io.yamlio import loads_json, read_yaml

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
scalars = st.one_of(st.integers(min_value=-10**50, max_value=10**50), st.floats(allow_nan=True), st.text(max_size=8),
                    st.booleans(), st.none())
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4),
                                                                                            inner, max_size=4),
                         max_leaves=20)


def _only_input_errors(call) -> None:
    """Any other exception escapes and fails the test."""
    with contextlib.suppress(InputError):
        call()


@SETTINGS
@given(st.one_of(st.binary(max_size=300), documents.map(lambda d: json.dumps(d).encode())))
def test_json_readers_raise_only_input_errors(tmp_path, raw):
    _only_input_errors(lambda: loads_json(raw, tmp_path / "p.json"))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 documents.map(lambda d: json.dumps(d).encode())))
def test_yaml_reader_raises_only_input_errors(tmp_path, raw):
    p = tmp_path / "d.yaml"
    p.write_bytes(raw)
    _only_input_errors(lambda: read_yaml(p))


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD = _npz(X=np.zeros((3, 2)), y=np.arange(3))


@SETTINGS
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.integers(0, len(GOOD)))
def test_npz_reader_raises_only_input_errors_on_flipped_or_cut_archives(tmp_path, pos, value, cut):
    raw = bytearray(GOOD)
    raw[pos] = value
    p = tmp_path / "d.npz"
    p.write_bytes(bytes(raw[:cut]))
    _only_input_errors(lambda: read_npz(p, InputError, "an NPZ file"))
