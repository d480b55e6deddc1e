"""Malformed input across every command and format: exit 2 (or 1 where a claim is false), one line, no traceback.

Each case is generated here from a valid file (truncations, byte flips, size bombs, deep nesting, huge
numbers, wrong types, swapped arguments) and made invalid by construction: a strict prefix of a JSON object
or of a zip archive, a flow list left open, a flipped byte in a zip member's data (its CRC no longer holds),
a declared size over the limit. Every case runs in its own process with its address space capped
(tests/isolated.py) and a time cap, and asserts: the exit status, one line on stderr naming the file, no
traceback, no output written, the inputs unchanged, and the peak memory it added.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.isolated import run_isolated

ROOT = Path(__file__).resolve().parents[2]
XOR_SPEC = (ROOT / "configs/xor.yaml").read_text()
XOR_DATA = (ROOT / "samples/xor.yaml").read_text()
LP = (ROOT / "samples/guzelsoy_ralphs.lp").read_text()
MEMORY_MB = 400  # peak resident memory a case may add to the fork server's
SMALL_LIMIT = {"BNNMILP_MAX_ELEMENTS": "100000"}  # zip bombs of a few kB stand for gigabyte ones


@dataclass
class Case:
    name: str
    files: dict[str, bytes]  # written into the case's folder
    args: list[str]  # {tmp} is the case's folder; {run} the trained xor run
    named: str  # the file the error line must name
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)


def _data_doc() -> dict:
    return yaml.safe_load(XOR_DATA)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _declared_npz(shape: tuple[int, ...], name: str = "X", extra: dict | None = None) -> bytes:
    """An NPZ whose member declares ``shape`` and holds no data (64 bytes standing for terabytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": shape})
        z.writestr(f"{name}.npy", head.getvalue())
        for k, v in (extra or {}).items():
            b = io.BytesIO()
            np.save(b, v)
            z.writestr(f"{k}.npy", b.getvalue())
    return buf.getvalue()


def _deflate_bomb(elements: int) -> bytes:
    """A real zip bomb: zeros compressed (200,000 doubles in a few kB; over SMALL_LIMIT)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.zeros((elements // 2, 2)), y=np.zeros(elements // 2, dtype=np.int64))
    return buf.getvalue()


def _flip_in_member_data(raw: bytes, seed: int) -> bytes:
    """Flip one byte inside a stored member's array data: the archive still opens, its CRC no longer holds."""
    rng = random.Random(seed)
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = [i for i in z.infolist() if i.file_size > 160]
        info = rng.choice(infos)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    pos = start + 128 + rng.randrange(info.compress_size - 128)  # past the .npy header (128 bytes)
    out = bytearray(raw)
    out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def _open_flow_prefixes(text: str, count: int, seed: int) -> list[str]:
    """Prefixes of a YAML document that end inside a flow list ('[' opened, not closed): never valid YAML."""
    rng = random.Random(seed)
    spots = [i + 1 for i, ch in enumerate(text) if ch in "[," and text.rfind("]", 0, i + 1) < text.rfind("[", 0, i + 1)]
    return [text[:k] for k in sorted(rng.sample(spots, min(count, len(spots))))]


def _deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# ---- generators: one list of cases per format ---------------------------------------------------------------

SPEC_NUMBERS = [("network", "layers", 0), ("network", "layers", 1), ("training", "epsilon", None),
                ("solver", "time_limit", None), ("solver", "threads", None), ("training", "seed", None),
                ("training", "margin_cap", None), ("solver", "mip_gap", None), ("solver", "budget", None)]
WRONG_VALUES = ["text", [1, 2], {"a": 1}, True, None, -1, 0, 10**30, "1e400", float("nan")]


def _spec_with(section: str, key: str, index: int | None, value) -> str:
    doc = yaml.safe_load(XOR_SPEC)
    doc.pop("meta", None)
    doc.setdefault(section, {})
    if index is None:
        doc[section][key] = value
    else:
        doc[section][key][index] = value
    return yaml.safe_dump(doc)


def spec_cases() -> list[Case]:
    cases = []
    train = ["train", "{tmp}/spec.yaml", str(ROOT / "samples/xor.yaml"), "-o", "{tmp}/out"]
    encode = ["encode", "{tmp}/spec.yaml", str(ROOT / "samples/xor.yaml"), "-o", "{tmp}/out.mps"]
    for section, key, index in SPEC_NUMBERS:
        for big in ("1" * 5000, "1" + "0" * 400):
            text = _spec_with(section, key, index, "BIG").replace("BIG", big)
            cases.append(Case(f"spec {section}.{key} = {len(big)}-digit integer", {"spec.yaml": text.encode()}, train,
                              "spec.yaml"))
    for i, value in enumerate(WRONG_VALUES):
        for section, key, index in SPEC_NUMBERS[:3] + SPEC_NUMBERS[4:5]:
            if value is None and key in ("budget",):
                continue
            if key == "epsilon" and value == "1e400":
                continue  # read as a float: infinity, refused like the others (see the NaN case)
            text = _spec_with(section, key, index, value)
            cases.append(Case(f"spec {section}.{key} = wrong value {i}", {"spec.yaml": text.encode()},
                              train if i % 2 else encode, "spec.yaml"))
    for k, prefix in enumerate(_open_flow_prefixes(XOR_SPEC, 4, 1)):
        cases.append(Case(f"spec truncated in a flow list {k}", {"spec.yaml": prefix.encode()}, train, "spec.yaml"))
    cases += [
        Case("spec nested 100,000 deep", {"spec.yaml": f"network: {_deep(100_000)}\n".encode()}, train, "spec.yaml"),
        Case("spec alias bomb", {"spec.yaml": (XOR_SPEC + "\n" + _alias_bomb()).encode()}, train, "spec.yaml"),
        Case("spec widths of 10^8", {"spec.yaml": _spec_with("network", "layers", 1, 10**8).encode()}, train,
             "spec.yaml"),
        Case("spec not UTF-8", {"spec.yaml": b"network:\n  layers: [2, \xff\xfe, 1]\n"}, train, "spec.yaml"),
        Case("spec empty", {"spec.yaml": b""}, train, "spec.yaml"),
        Case("spec a list", {"spec.yaml": b"- 1\n- 2\n"}, encode, "spec.yaml"),
        Case("spec python object", {"spec.yaml": b"!!python/object/apply:os.system ['true']\n"}, train, "spec.yaml"),
    ]
    return cases


def data_cases() -> list[Case]:
    cases = []
    train = ["train", str(ROOT / "configs/xor.yaml"), "{tmp}/data.yaml", "-o", "{tmp}/out"]

    def doc_case(name: str, doc: dict | str) -> Case:
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
        return Case(name, {"data.yaml": text.encode()}, train, "data.yaml")

    base = _data_doc()
    for i in range(4):
        d = _data_doc()
        d["features"][i][i % 2] = 10**400 if i % 2 else "x"
        cases.append(doc_case(f"data feature {i} not a double", d))
        d = _data_doc()
        d["labels"][i] = [10**30, -1, 0.5, "one"][i]
        cases.append(doc_case(f"data label {i} out of range or not an integer", d))
        text = yaml.safe_dump(base).replace(str(base["features"][i][0]), "1" * 5000, 1)
        cases.append(doc_case(f"data 5000-digit number {i}", text))
    for k, prefix in enumerate(_open_flow_prefixes(XOR_DATA, 12, 2)):
        cases.append(doc_case(f"data truncated in a flow list {k}", prefix))
    cases += [
        doc_case("data ragged", {**base, "features": [[1, 2], [1], *base["features"][2:]]}),
        doc_case("data missing labels", {"features": base["features"]}),
        doc_case("data nested 100,000 deep", f"features: {_deep(100_000)}\nlabels: [0]\n"),
        doc_case("data alias bomb", XOR_DATA + _alias_bomb()),
        doc_case("data NaN", XOR_DATA.replace("-0.75", ".nan", 1)),
        doc_case("data infinity", XOR_DATA.replace("-0.75", "-.inf", 1)),
        doc_case("data no rows", {"features": [], "labels": []}),
    ]
    return cases


def csv_cases() -> list[Case]:
    train = ["train", str(ROOT / "configs/xor.yaml"), "{tmp}/data.csv", "-o", "{tmp}/out"]
    rows = ["x0,x1,label", "-0.75,-0.625,0", "-0.5,0.75,1", "0.625,-0.5,1"]
    variants = {
        "field over 131,072 characters": "1" * 200_000 + ",1,0",
        "NUL byte": "0.5,\x00,1",
        "not a number": "0.5,abc,1",
        "label not an integer": "0.5,0.5,0.5",
        "label of 40 digits": "0.5,0.5," + "9" * 40,
        "label negative": "0.5,0.5,-1",
        "one field": "0.5",
        "too few features": "0.5,1",
        "infinity": "inf,0.5,1",
        "5000-digit label": "0.5,0.5," + "1" * 5000,
        "open quote": '"0.5,0.5,1',
    }
    cases = [Case(f"csv {name}", {"data.csv": "\n".join([*rows, bad, ""]).encode()}, train, "data.csv")
             for name, bad in variants.items()]
    cases.append(Case("csv header only", {"data.csv": b"x0,x1,label\n"}, train, "data.csv"))
    return cases


def npz_cases() -> list[Case]:
    d = _data_doc()
    good = _npz(X=np.array(d["features"], dtype=np.float64), y=np.array(d["labels"], dtype=np.int64))
    train = ["train", str(ROOT / "configs/xor.yaml"), "{tmp}/data.npz", "-o", "{tmp}/out"]
    rng = random.Random(3)
    cases = [Case(f"npz truncated at {k}", {"data.npz": good[:k]}, train, "data.npz")
             for k in sorted(rng.sample(range(1, len(good) - 1), 10))]
    cases += [Case(f"npz flipped data byte {s}", {"data.npz": _flip_in_member_data(good, s)}, train, "data.npz")
              for s in range(8)]
    cases += [
        Case("npz declares 10^12 elements", {"data.npz": _declared_npz((10**6, 10**6), extra={"y": np.zeros(2)})},
             train, "data.npz"),
        Case("npz deflate bomb", {"data.npz": _deflate_bomb(400_000)}, train, "data.npz", env=SMALL_LIMIT),
        Case("npz object array", {"data.npz": _npz(X=np.array([[object()]], dtype=object), y=np.zeros(1))}, train,
             "data.npz"),
        Case("npz 3-D X", {"data.npz": _npz(X=np.zeros((2, 2, 2)), y=np.zeros(2, dtype=int))}, train, "data.npz"),
        Case("npz float labels", {"data.npz": _npz(X=np.zeros((2, 2)), y=np.zeros(2))}, train, "data.npz"),
        Case("npz missing y", {"data.npz": _npz(X=np.zeros((2, 2)))}, train, "data.npz"),
        Case("npz empty file", {"data.npz": b""}, train, "data.npz"),
    ]
    return cases


def weights_cases(run: Path) -> list[Case]:
    doc = yaml.safe_load((run / "weights.yaml").read_text())
    verify = ["verify", "{tmp}/w.yaml", str(ROOT / "samples/xor.yaml")]
    predict = ["predict", "{tmp}/w.yaml", str(ROOT / "samples/xor.yaml")]
    text = (run / "weights.yaml").read_text()
    cases = [Case(f"weights truncated in a flow list {k}", {"w.yaml": p.encode()}, verify if k % 2 else predict,
                  "w.yaml") for k, p in enumerate(_open_flow_prefixes(text, 8, 4))]
    for i, (key, value) in enumerate([("version", 99), ("format", "other"), ("layers", "x"), ("network", None),
                                      ("layers", [{"weights": [[1e400]], "thresholds": [0]}])]):
        cases.append(Case(f"weights {key} wrong", {"w.yaml": yaml.safe_dump({**doc, key: value}).encode()},
                          verify if i % 2 else predict, "w.yaml"))
    cases.append(Case("weights nested 100,000 deep", {"w.yaml": f"layers: {_deep(100_000)}\n".encode()}, verify,
                      "w.yaml"))
    npz_verify = ["verify", "{tmp}/w.npz", str(ROOT / "samples/xor.yaml")]
    header = {k: v for k, v in doc.items() if k != "layers"}
    arrays = {f"{p}{l}": np.asarray(layer[k], dtype=np.float64) for l, layer in enumerate(doc["layers"])
              for p, k in (("W", "weights"), ("t", "thresholds"))}

    def npz_with(h) -> bytes:
        return _npz(header=np.array(h if isinstance(h, str) else json.dumps(h)), **arrays)

    good = npz_with(header)
    cases += [
        Case("weights npz header NaN", {"w.npz": npz_with(json.dumps({**header, "extra": float("nan")}))},
             npz_verify, "w.npz"),
        Case("weights npz header version 99", {"w.npz": npz_with({**header, "version": 99})}, npz_verify, "w.npz"),
        Case("weights npz header nested 100,000 deep", {"w.npz": npz_with(_deep(100_000))}, npz_verify, "w.npz"),
        Case("weights npz header not JSON", {"w.npz": npz_with("{network:")}, npz_verify, "w.npz"),
        Case("weights npz declares 10^12", {"w.npz": _declared_npz((10**6, 10**6), "W0")}, npz_verify, "w.npz"),
    ]
    cases += [Case(f"weights npz truncated {k}", {"w.npz": good[:k]}, npz_verify, "w.npz")
              for k in (0, 100, len(good) // 2, len(good) - 10)]
    return cases


def proof_cases(run: Path) -> list[Case]:
    proof = (run / "proof.json").read_text()
    doc = json.loads(proof)
    args = ["verify", str(run), str(ROOT / "samples/xor.yaml"), "--certificate", "{tmp}/p.json"]
    rng = random.Random(5)
    stripped = proof.rstrip()
    cases = [Case(f"proof truncated at {k}", {"p.json": stripped[:k].encode()}, args, "p.json")
             for k in sorted(rng.sample(range(len(stripped) - 1), 10))]
    for key, value in [("version", 99), ("version", True), ("format", "x"), ("claimed_bound", "NaN"),
                       ("nodes", "x"), ("leaves", None)]:
        text = json.dumps({**doc, key: value}).replace('"NaN"', "NaN")
        cases.append(Case(f"proof {key} = {value!r}", {"p.json": text.encode()}, args, "p.json",
                          code=1 if key in ("nodes", "leaves") else 2))
    cases += [
        Case("proof nested 100,000 deep", {"p.json": _deep(100_000).encode()}, args, "p.json"),
        Case("proof 5000-digit number", {"p.json": proof.replace('"version": ', '"version": ' + "1" * 5000 + ", "
                                                                 '"v": ', 1).encode()}, args, "p.json"),
        Case("proof empty", {"p.json": b""}, args, "p.json"),
    ]
    return cases


def model_cases() -> list[Case]:
    cases = []
    commands = [["certify", "{tmp}/m.lp", "-o", "{tmp}/out.json"], ["grad", "{tmp}/m.lp"],
                ["value-function", "{tmp}/m.lp", "--row", "b", "--from", "0", "--to", "1", "-o", "{tmp}/out.csv"]]
    variants = {
        "empty": "",
        "objective only, no variables": "minimize\n obj:\nend\n",
        "objective coefficient 1e400": LP.replace("obj: 0.5 x1", "obj: 1e400 x1"),
        "row coefficient 1e400": LP.replace("b: x1", "b: 1e400 x1"),
        "garbage": "\x00\x01\x02 not a model",
        "subject to before the objective": "subject to\n c: x >= 1\nminimize\n obj: x\n",
    }
    for name, text in variants.items():
        for cmd in commands:
            cases.append(Case(f"lp {name} ({cmd[0]})", {"m.lp": text.encode()}, cmd, "m.lp"))
    mps_cmd = ["certify", "{tmp}/m.mps", "-o", "{tmp}/out.json"]
    for name, text in {"header only": "NAME x\n", "rows section only": "NAME x\nROWS\n N obj\n",
                       "columns without rows": "NAME x\nCOLUMNS\n x obj 1\nENDATA\n"}.items():
        cases.append(Case(f"mps {name}", {"m.mps": text.encode()}, mps_cmd, "m.mps"))
    unbounded = "minimize\n obj: -x1\nsubject to\n c: x1 - 2 x2 = 0\ngeneral\n x1 x2\nend\n"
    infeasible = "minimize\n obj: x1\nsubject to\n c: 2 x1 = 1\ngeneral\n x1\nend\n"
    for name, text in (("unbounded", unbounded), ("infeasible", infeasible)):
        for cmd in commands[:2]:
            cases.append(Case(f"lp {name} ({cmd[0]})", {"m.lp": text.encode()}, cmd, "", code=1))
    cases.append(Case("value-function 10^8 steps", {"m.lp": LP.encode()},
                      [*commands[2], "--steps", "100000000"], "--steps"))
    return cases


def onnx_cases(run: Path) -> list[Case]:
    import onnx
    from onnx import TensorProto, helper

    good = (run / "net.onnx").read_bytes()
    args = ["import", "{tmp}/m.onnx", "-o", "{tmp}/out.npz"]
    rng = random.Random(6)
    cases = [Case(f"onnx truncated at {k}", {"m.onnx": good[:k]}, args, "m.onnx")
             for k in sorted(rng.sample(range(1, len(good) - 1), 8))]

    def model(dims_in: list[int], w: TensorProto) -> bytes:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims_in)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
        g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g", [x], [y], [w])
        return helper.make_model(g).SerializeToString()

    def empty_tensor(dims: list[int]) -> TensorProto:
        t = TensorProto(name="W", data_type=TensorProto.FLOAT)
        t.dims.extend(dims)
        return t

    small = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1.0] * 8)
    cases += [
        Case("onnx initializer [100000, 100000] without data", {"m.onnx": model([1, 4], empty_tensor([10**5] * 2))},
             args, "m.onnx"),
        Case("onnx initializer [1000, 1000] without data", {"m.onnx": model([1, 4], empty_tensor([1000, 1000]))},
             args, "m.onnx"),
        Case("onnx input of 10^9 elements", {"m.onnx": model([1, 10**9], small)}, args, "m.onnx"),
        Case("onnx input of 3x10^7 elements", {"m.onnx": model([1, 30_000_000], small)}, args, "m.onnx"),
        Case("onnx not a model", {"m.onnx": b"\x08\x07garbage"}, args, "m.onnx"),
    ]
    assert onnx.__version__
    return cases


def other_cases(run: Path) -> list[Case]:
    xor = str(ROOT / "samples/xor.yaml")
    robust = ["verify", str(run), xor, "--robust", "--eps", "0.1", "--box", "{tmp}/box.yaml", "--time-limit", "5"]
    boxes = {
        "wrong count": "lower: [0, 0, 0]\nupper: [1, 1, 1]\n",
        "lower above upper": "lower: [1, 1]\nupper: [0, 0]\n",
        "5000-digit bound": f"lower: [{'1' * 5000}, 0]\nupper: [1, 1]\n",
        "nested deep": f"lower: {_deep(100_000)}\nupper: [1, 1]\n",
        "extra key": "lower: [0, 0]\nupper: [1, 1]\nmid: 0\n",
        "alias bomb": "lower: [0, 0]\nupper: [1, 1]\n" + _alias_bomb(),
    }
    cases = [Case(f"box {n}", {"box.yaml": t.encode()}, robust, "box.yaml") for n, t in boxes.items()]
    sweep = ["sweep", "{tmp}/s.yaml", "-o", "{tmp}/out"]
    head = f"spec: {ROOT / 'configs/xor.yaml'}\ndata: {ROOT / 'samples/xor.yaml'}\n"
    sweeps = {
        "alias bomb under grid": head + "grid:\n" + "".join(f"  {ln}\n" for ln in _alias_bomb(10).splitlines()),
        "10^10 grid points": head + "grid:\n" + "".join(f"  k{i}: [1,2,3,4,5,6,7,8,9,10]\n" for i in range(10)),
        "grid not a mapping": head + "grid: [1, 2]\n",
        "grid nested deep": head + f"grid:\n  k: {_deep(100_000)}\n",
    }
    cases += [Case(f"sweep {n}", {"s.yaml": t.encode()}, sweep, "s.yaml") for n, t in sweeps.items()]
    spec, data = str(ROOT / "configs/xor.yaml"), xor
    swapped = [["train", data, spec, "-o", "{tmp}/out"], ["encode", data, spec, "-o", "{tmp}/out.mps"],
               ["verify", data, str(run)], ["predict", data, str(run)], ["certify", data, "-o", "{tmp}/out.json"],
               ["bound", data, spec, "-o", "{tmp}/out.json"], ["import", spec, "-o", "{tmp}/out.npz"],
               ["export", data, "-o", "{tmp}/out.onnx"]]
    cases += [Case(f"swapped arguments ({a[0]})", {}, a, "") for a in swapped]
    cases += [Case("train --threads 10^20", {}, ["train", spec, data, "-o", "{tmp}/out", "--threads", "1" + "0" * 20],
                   "--threads")]
    return cases


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A trained xor run with its proof, and the network exported to ONNX: valid files to break."""
    from click.testing import CliRunner

    from bnnmilp.cli import main

    out = tmp_path_factory.mktemp("fuzz") / "run"
    r = CliRunner().invoke(main, ["train", str(ROOT / "configs/xor.yaml"), str(ROOT / "samples/xor.yaml"),
                                  "-o", str(out), "--time-limit", "20"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(out), "-o", str(out / "net.onnx")])
    assert r.exit_code == 0, r.output
    assert (out / "proof.json").exists()
    return out


STATIC = spec_cases() + data_cases() + csv_cases() + npz_cases() + model_cases()


def test_the_suite_has_over_200_cases(run):
    assert len(STATIC) + len(weights_cases(run)) + len(proof_cases(run)) + len(onnx_cases(run)) + \
        len(other_cases(run)) >= 200


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def check(case: Case, tmp: Path, run: Path) -> None:
    for name, content in case.files.items():
        (tmp / name).write_bytes(content)
    args = [a.replace("{tmp}", str(tmp)).replace("{run}", str(run)) for a in case.args]
    before, before_run = _digest(tmp), _digest(run)
    out = run_isolated(args, tmp, case.env)
    assert out.code is not None, f"{case.name}: still running after {out.seconds:.0f} s"
    assert out.code == case.code, f"{case.name}: exit {out.code}, stderr {out.stderr[-600:]!r}"
    assert len(out.lines) == 1, f"{case.name}: {out.stderr[-600:]!r}"
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert case.named in out.lines[0], f"{case.name}: {out.lines[0]!r} does not name {case.named!r}"
    assert _digest(tmp) == before, f"{case.name}: files written or changed"
    assert _digest(run) == before_run, f"{case.name}: the input run changed"
    assert out.extra_rss_mb < MEMORY_MB, f"{case.name}: {out.extra_rss_mb:.0f} MB"


@pytest.mark.parametrize("case", STATIC, ids=[c.name for c in STATIC])
def test_malformed_input(case, tmp_path, run):
    check(case, tmp_path, run)


@pytest.mark.parametrize("kind", ["weights", "proof", "onnx", "other"])
def test_malformed_input_made_from_a_run(kind, tmp_path, run):
    """Cases built from the trained run's files; each in its own folder, every failure listed."""
    make = {"weights": weights_cases, "proof": proof_cases, "onnx": onnx_cases, "other": other_cases}[kind]
    failures = []
    for i, case in enumerate(make(run)):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        try:
            check(case, folder, run)
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, "\n".join(failures)
