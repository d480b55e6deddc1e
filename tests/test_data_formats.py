"""Data as YAML, CSV or NPZ: the same numbers give the same data set (and fingerprint); bad files exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.data import load_data
from bnnmilp.errors import DataError

X = [[0.125, -1.0, 3.0], [1e-3, 2.5, 0.0], [7.0, -0.375, 1.0]]
Y = [1, 0, 2]


def _write_all(tmp_path):
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"features": X, "labels": Y}))
    (tmp_path / "d.csv").write_text("x0,x1,x2,label\n" + "".join(f"{a!r},{b!r},{c!r},{y}\n"
                                                               for (a, b, c), y in zip(X, Y, strict=True)))
    (tmp_path / "plain.csv").write_text("".join(",".join(map(repr, row)) + f",{y}\n"
                                                for row, y in zip(X, Y, strict=True)))
    np.savez(tmp_path / "d.npz", X=np.array(X), y=np.array(Y))
    return [tmp_path / n for n in ("d.yaml", "d.csv", "plain.csv", "d.npz")]


def test_every_format_reads_the_same_numbers(tmp_path):
    sets = [load_data(p) for p in _write_all(tmp_path)]
    for ds in sets:
        assert ds.features.tolist() == X and ds.labels.tolist() == Y
        assert ds.sha256() == sets[0].sha256()


def test_a_file_without_a_known_extension_is_read_by_its_content(tmp_path):
    for p in _write_all(tmp_path):
        bare = p.with_name(p.stem + "_" + p.suffix[1:])  # d_npz, d_csv, plain_csv, d_yaml
        bare.write_bytes(p.read_bytes())
        ds = load_data(bare)
        assert ds.features.tolist() == X and ds.labels.tolist() == Y


def test_train_and_verify_accept_csv_and_npz(tmp_path, repo_root):
    src = load_data(repo_root / "samples/xor.yaml")
    np.savez(tmp_path / "xor.npz", X=src.features, y=src.labels)
    (tmp_path / "xor.csv").write_text("".join(",".join(map(repr, r)) + f",{int(y)}\n"
                                              for r, y in zip(src.features.tolist(), src.labels, strict=True)))
    r = CliRunner().invoke(main, ["train", str(repo_root / "configs/xor.yaml"), str(tmp_path / "xor.npz"), "-o",
                                  str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["objective"] == 0
    for data in ("xor.csv", "xor.npz"):  # the same fingerprint: the run's claims hold on either file
        assert CliRunner().invoke(main, ["verify", str(tmp_path / "run"), str(tmp_path / data)]).exit_code == 0


@pytest.mark.parametrize(("name", "content", "key", "expected"), [
    ("a.csv", "", "rows", "expected at least one row of features and a label"),
    ("a.csv", "x0,label\n", "rows", "expected at least one row of features and a label"),
    ("a.csv", "1.0\n", "row 1", "expected feature values and a label"),
    ("a.csv", "1.0,2.0,0\n1.0,x,1\n", "row 2, column 2", "expected a number, got 'x'"),
    ("a.csv", "1.0,2.0,0.5\n", "row 1, label", "expected an integer, got '0.5'"),
    ("a.csv", "1.0,2.0,0\n1.0,1\n", "features[1]", "expected 2 numbers like features[0], got 1"),
    ("a.csv", "1.0,inf,0\n", "features[0][1]", "expected a finite number, got inf"),
    ("a.npz", b"not a zip", None, "not an NPZ file with arrays X and y (not a zip archive)"),
])
def test_bad_csv_and_npz_files_name_the_place(tmp_path, name, content, key, expected):
    p = tmp_path / name
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    with pytest.raises(DataError) as info:
        load_data(p)
    assert str(info.value) == ": ".join(x for x in (str(p), key, expected) if x)


@pytest.mark.parametrize(("arrays", "key", "expected"), [
    ({"X": np.zeros((2, 2))}, "y", "missing array (found: X)"),
    ({"X": np.zeros(2), "y": np.zeros(2, dtype=int)}, "X", "expected a 2-D array of numbers, got 1-D float64"),
    ({"X": np.zeros((2, 2), dtype=bool), "y": np.zeros(2, dtype=int)}, "X",
     "expected a 2-D array of numbers, got 2-D bool"),
    ({"X": np.zeros((2, 2)), "y": np.zeros(2)}, "y", "expected a 1-D array of integers, got 1-D float64"),
    ({"X": np.zeros((2, 2)), "y": np.zeros(3, dtype=int)}, "labels",
     "expected 2 labels (one per row of features), got 3"),
    ({"X": np.full((1, 2), np.nan), "y": np.zeros(1, dtype=int)}, "features[0][0]",
     "expected a finite number, got nan"),
])
def test_bad_npz_arrays_name_the_array(tmp_path, arrays, key, expected):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError) as info:
        load_data(p)
    assert str(info.value) == f"{p}: {key}: {expected}"


def test_npz_files_are_never_unpickled(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, X=np.array([[object()]], dtype=object), y=np.zeros(1, dtype=int))
    with pytest.raises(DataError) as info:
        load_data(p)
    assert str(info.value) == f"{p}: X: expected an array of numbers or text, not of Python objects"
