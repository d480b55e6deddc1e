"""VIPR export against the published format (Cheung, Gleixner & Steffy 2017): sections, counts,
derivation syntax, and every lin/rnd derivation re-derived exactly by a small independent reader."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from fractions import Fraction

import pytest

from bnnmilp.milp.backends import highs
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from bnnmilp.verification.proofs.vipr import vipr_text
from tests.verification.proofs.test_proofs import BNN, bnn_proof


def parse_vipr(text: str) -> dict:
    tok = text.split()
    pos = 0

    def nxt() -> str:
        nonlocal pos
        pos += 1
        return tok[pos - 1]

    def sparse() -> dict[int, Fraction]:
        k = int(nxt())
        return {int(nxt()): Fraction(nxt()) for _ in range(k)}

    out: dict = {}
    assert nxt() == "VER" and nxt() == "1.0"
    assert nxt() == "VAR"
    n = int(nxt())
    out["vars"] = [nxt() for _ in range(n)]
    assert nxt() == "INT"
    out["int"] = [int(nxt()) for _ in range(int(nxt()))]
    assert nxt() == "OBJ" and nxt() == "min"
    out["obj"] = sparse()
    assert nxt() == "CON"
    m, b = int(nxt()), int(nxt())
    cons = []
    for _ in range(m):
        name, sense, rhs = nxt(), nxt(), Fraction(nxt())
        assert sense in "ELG"
        cons.append((name, sense, rhs, sparse()))
    out["n_bounds"] = b
    assert all(len(c[3]) == 1 for c in cons[:b])  # bound constraints first
    assert nxt() == "RTP" and nxt() == "range"
    out["lb"] = Fraction(nxt())
    assert nxt() == "inf"
    assert nxt() == "SOL" and int(nxt()) == 0
    assert nxt() == "DER"
    d = int(nxt())
    ders = []
    for _ in range(d):
        name, sense, rhs = nxt(), nxt(), Fraction(nxt())
        coefs = sparse()
        assert nxt() == "{"
        kind = nxt()
        args = []
        while (t := nxt()) != "}":
            args.append(t)
        last = int(nxt())
        assert last >= -1
        ders.append((name, sense, rhs, coefs, kind, args))
    assert pos == len(tok)
    out["cons"], out["ders"] = cons, ders
    return out


def check_derivations(v: dict) -> None:
    allc = list(v["cons"])
    assumed: list[set[int]] = [set() for _ in allc]  # the assumptions each constraint depends on
    for name, sense, rhs, coefs, kind, args in v["ders"]:
        idx = len(allc)
        assumptions: set[int] = set()
        if kind in ("lin", "rnd"):
            k = int(args[0])
            pairs = [(int(args[1 + 2 * t]), Fraction(args[2 + 2 * t])) for t in range(k)]
            total: dict[int, Fraction] = {}
            b = Fraction(0)
            for i, lam in pairs:
                assert i < idx
                _, s, r, a = allc[i]
                # sign consistency: a >= derivation takes G with lam >= 0 and L with lam <= 0, a <= derivation
                # the other way round; E any
                sign = lam if sense == "G" else -lam
                assert (s != "G" or sign >= 0) and (s != "L" or sign <= 0), (name, i, s, lam)
                assumptions |= assumed[i]
                b += lam * r
                for j, aj in a.items():
                    total[j] = total.get(j, Fraction(0)) + lam * aj
            total = {j: a for j, a in total.items() if a != 0}
            assert sense in "GL" and total == {j: a for j, a in coefs.items() if a != 0}, name
            if kind == "rnd":
                assert all(j in v["int"] for j in total) and all(a.denominator == 1 for a in total.values())
                b = Fraction(math.ceil(b) if sense == "G" else math.floor(b))
            assert (b >= rhs) if sense == "G" else (b <= rhs), (name, float(b), float(rhs))
        elif kind == "uns":
            i1, l1, i2, l2 = map(int, args)
            assert max(i1, l1, i2, l2) < idx
            a1, a2 = allc[l1], allc[l2]
            # a split a x <= k | a x >= k + 1, a integral on integer columns only
            assert a1[3] == a2[3] and {a1[1], a2[1]} == {"L", "G"}
            assert all(j in v["int"] and c.denominator == 1 for j, c in a1[3].items())
            assert l1 in assumed[l1] and l2 in assumed[l2]
            lo, hi = (a1, a2) if a1[1] == "L" else (a2, a1)
            assert hi[2] == lo[2] + 1 and lo[2].denominator == 1
            assert allc[i1][1] == allc[i2][1] == sense and allc[i1][3] == allc[i2][3] == coefs
            if sense == "G":
                assert allc[i1][2] >= rhs and allc[i2][2] >= rhs
            else:
                assert sense == "L" and allc[i1][2] <= rhs and allc[i2][2] <= rhs
            assumptions = (assumed[i1] - {l1}) | (assumed[i2] - {l2})
        else:
            assert kind == "asm"
            assumptions = {idx}
        allc.append((name, sense, rhs, coefs))
        assumed.append(assumptions)
    final = allc[-1]
    assert final[3] == v["obj"] and final[2] >= v["lb"]
    assert not assumed[-1]  # the final cut holds without assumptions


@pytest.mark.parametrize("inst", [*BNN[:2], BNN[3]])  # the last has reduced-cost fixings
def test_vipr_for_bnn_proofs(inst):
    tm, _, _, tree, doc = bnn_proof(*inst)
    v = parse_vipr(vipr_text(tm.model, doc))
    assert len(v["vars"]) == tm.model.n_cols
    assert v["lb"] == Fraction(float(tree.claimed_bound)) - Fraction(float(tm.model.offset))
    n_internal = len(tree.nodes) - len(tree.leaves)
    kinds = [d[4] for d in v["ders"]]
    leaf_kinds = [d[4] for d in v["ders"] if d[0].startswith("leaf")]
    assert leaf_kinds == ["rnd"] * len(tree.leaves)  # integral objective: leaves are rounded cuts
    derived = doc.get("derived", [])
    assert len(derived) == sum(len(n.steps) for n in tree.nodes) > 0  # propagation ran, one derivation per step

    def uses_hypothesis(row) -> bool:  # row -1, a reduced-cost fixing, or a probe with a step on row -1
        return row == -1 or isinstance(row, dict) or (isinstance(row, list) and any(t[3] == -1 for t in row))

    assert [d[0] for d in v["ders"]].count("hyp") == any(uses_hypothesis(r[4]) for r in derived)
    hyp = 2 * any(uses_hypothesis(r[4]) for r in derived)  # the hypothesis and its complement
    probes = [r for r in derived if isinstance(r[4], list)]
    inner = sum(len(r[4]) for r in probes)
    assert sum(d[0].startswith("d") for d in v["ders"]) == len(derived) - len(probes) + inner
    assert sum(d[0].startswith("p") for d in v["ders"]) == 4 * len(probes)  # assume, contradict, assume, uns
    assert kinds.count("asm") == len(tree.nodes) - 1 + hyp + 2 * len(probes)
    assert kinds.count("uns") == n_internal + hyp // 2 + len(probes)
    check_derivations(v)


def test_vipr_for_the_value_function_example(repo_root):
    model = highs.read(repo_root / "samples/guzelsoy_ralphs.lp")
    tree = branch_and_bound(model)
    v = parse_vipr(vipr_text(model, proof_doc(model, tree)))
    assert [d[4] for d in v["ders"] if d[0].startswith("leaf")] == ["lin"] * len(tree.leaves)
    check_derivations(v)
    assert abs(float(v["lb"]) - 1.0) < 1e-6  # z(1/2) = 1


VIPRCHK = os.environ.get("BNNMILP_VIPRCHK") or shutil.which("viprchk")


@pytest.mark.skipif(VIPRCHK is None, reason="viprchk is not built here (set BNNMILP_VIPRCHK to its path)")
@pytest.mark.parametrize("inst", [*BNN[:2], BNN[3]])
def test_viprchk_accepts_the_exports_and_rejects_a_tampered_one(inst, tmp_path):
    """The reference checker of Cheung, Gleixner & Steffy on proofs with derived bounds, probes and the
    hypothesis; a derived bound made tighter than its row gives must fail it."""
    tm, _, _, _, doc = bnn_proof(*inst)
    assert doc.get("derived")
    text = vipr_text(tm.model, doc)
    good = tmp_path / "good.vipr"
    good.write_text(text)
    r = subprocess.run([VIPRCHK, str(good)], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "Successfully verified" in r.stdout, r.stdout[-500:] + r.stderr[-500:]
    lines = text.split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("d") and " { rnd " in line)
    name, sense, rhs, rest = lines[k].split(" ", 3)
    lines[k] = " ".join([name, sense, str(Fraction(rhs) + (-1 if sense == "L" else 1)), rest])
    bad = tmp_path / "bad.vipr"
    bad.write_text("\n".join(lines))
    r = subprocess.run([VIPRCHK, str(bad)], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode != 0 and f"Failed to derive constraint {name}" in r.stdout
