"""Run folders: ``weights.yaml`` or, for large networks, ``weights.npz`` (the network and its claims) and
``certificate.json`` (the solver's record).

Both are written atomically. The weights file is self-contained: it holds
the settings, the data fingerprint, the exactly recomputed loss and the
solver's bound, so ``verify`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnnmilp import __version__
from bnnmilp.errors import OutputError, WeightsError
from bnnmilp.io.yamlio import (
    atomic_write,
    check_output_path,
    fraction_str,
    is_stdio,
    read_yaml,
    strict_json,
    write_together,
    write_yaml_atomic,
    yaml_text,
)
from bnnmilp.network import Network
from bnnmilp.network.sparse import Csr, is_sparse
from bnnmilp.spec import Spec, parse_spec

if TYPE_CHECKING:  # the run files only describe results: reading and checking them needs no solver
    from bnnmilp.network.ensemble import EnsembleFile
    from bnnmilp.training.objectives import StageResult
    from bnnmilp.training.pipeline import TrainResult

WEIGHTS_FORMAT = "bnnmilp-weights"
# the statuses a run may end with (milp.backends.base.STATUSES but its FAILED ones: nothing is written then)
CHECKPOINT_NOTE = ("written while the solver ran: the run had not finished when this file was written (if it "
                   "stays so, the process was killed); the network is the incumbent of that moment, its loss exact")
FINISHED = ("optimal", "time_limit", "node_limit", "interrupted", "infeasible", "heuristic", "stalled")
OWNED = ("weights.yaml", "weights.npz", "certificate.json", "proof.json", "proof.vipr", "members", "jobs")
NPZ_ABOVE = 100_000  # networks with more parameters are written as weights.npz (YAML stays for small ones)
CERT_FORMAT = "bnnmilp-certificate"


def _stage_doc(st: StageResult) -> dict[str, Any]:
    s = st.solution
    return {"stage": st.name, "status": s.status, "objective": s.objective, "bound": s.bound, "gap": s.gap,
            "nodes": s.nodes, "runtime_s": round(s.runtime_s, 6), "kept_value": st.value}


LOCK = ".bnnmilp.lock"  # in a run folder while a command writes it: holds the writer's process id
_HELD: dict[str, int] = {}  # run folder -> the open descriptor of its lock (released when the process ends)


def lock_run_dir(p: Path) -> None:
    """Take the run folder's lock (an exclusive flock on RUN/.bnnmilp.lock, kept until this process ends): a
    second writer of the same folder is refused at once, naming the process that holds it."""
    import fcntl

    key = os.path.realpath(p)
    if key in _HELD:
        return
    try:
        fd = os.open(p / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(str(p), f"cannot create its lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        _refuse_held(p)  # names the holder
        raise OutputError(str(p), "is being written by another process") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd


def _refuse_held(p: Path) -> None:
    """Refuse a folder whose lock another process holds (probing it changes nothing in the folder)."""
    import fcntl

    if os.path.realpath(p) in _HELD:
        return
    try:
        fd = os.open(p / LOCK, os.O_RDWR)
    except OSError:
        return  # no lock file: nobody writes here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        raise OutputError(str(p), f"is being written by process {holder}: wait for it to end, or choose another "
                                  "folder") from None
    finally:
        os.close(fd)


def release_run_dir(p: Path) -> None:
    """Give the lock back and remove its file (after a failure that leaves the folder as it was)."""
    fd = _HELD.pop(os.path.realpath(p), None)
    if fd is not None:
        (p / LOCK).unlink(missing_ok=True)
        os.close(fd)


def prepare_run_dir(run_dir: str | Path, force: bool = False) -> bool:
    """Check (before any solving) that the run folder can be written and holds no earlier run, and lock it for
    this process. Returns whether the folder was created here (so that a failure can remove it again).

    A folder with files refuses unless ``force``, which first removes the files bnnmilp writes there
    (``jobs/`` alone is kept without it: an interrupted ensemble resumes from it)."""
    import shutil

    p = check_output_path(run_dir, folder=True)
    created = not p.exists()
    if not created and not force:
        _refuse_earlier_run(p)  # before the lock: a folder that holds a run is refused untouched
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(str(p), f"cannot create it ({exc.strerror})") from None
    lock_run_dir(p)
    if not force:
        try:  # again under the lock: another writer may have filled it meanwhile
            _refuse_earlier_run(p)
        except OutputError:
            release_run_dir(p)
            raise
    for name in OWNED:
        q = p / name
        if q.is_dir() and not q.is_symlink():
            shutil.rmtree(q)
        elif q.exists() or q.is_symlink():
            q.unlink()
    for q in p.iterdir():
        if stale_temporary(q.name) and q.is_file():
            q.unlink()
    return created


def stale_temporary(name: str) -> bool:
    """A temporary file of one of the run's files (``.weights.yaml.x1y2.yaml``): what a kill -9 during a write
    leaves; never read as output, removed by the next run into the folder."""
    return name.startswith(".") and any(name[1:].startswith(f"{owned}.") for owned in OWNED)


def _refuse_earlier_run(p: Path) -> None:
    _refuse_held(p)
    present = sorted(x.name for x in p.iterdir() if x.name not in (LOCK, "jobs") and not stale_temporary(x.name))
    if present:
        shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        raise OutputError(str(p), f"not empty ({shown}): choose a new folder, or --force to replace the files "
                                  "bnnmilp wrote there")


@contextlib.contextmanager
def owned_run_dir(run_dir: str | Path, force: bool = False) -> Iterator[bool]:
    """:func:`prepare_run_dir` for the length of a command: yields whether the folder was created; at the end,
    whatever happened, the lock is given back, and a folder this command created and left without a result
    (no weights, no certificate: bad input found late, a failure, a signal before the first checkpoint) is
    removed again."""
    created = prepare_run_dir(run_dir, force)
    p = Path(run_dir)
    try:
        yield created
    finally:
        release_run_dir(p)
        if created and p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def loss_note(res: TrainResult) -> str | None:
    """Say so when the written weights lose more than the solver's optimum claims (no polishing, a solver
    network on the boundary of its rows): the solver's objective is then not the written network's loss."""
    ls = next((st.solution for st in res.stages if st.name == "loss"), None)
    if res.best is None or ls is None or ls.objective is None or res.best.loss <= ls.objective + 1e-6:
        return None
    return (f"the written weights' exact loss {res.best.loss} exceeds the solver's objective {ls.objective:g}: "
            "its network meets its rows only within floating-point tolerance; polishing (training.polish: min) "
            "recovers it")


def certificate_doc(res: TrainResult) -> dict[str, Any]:
    s = res.solution
    if s.solver == "ste":
        return {"format": CERT_FORMAT, "version": 1, "kind": "heuristic", "proven": False,
                "note": "trained by the STE heuristic: no bound", "status": res.status,
                "data_sha256": res.data.sha256(), "bnnmilp_version": __version__}
    loss_stage = next((st for st in res.stages if st.name == "loss"), None)
    ls = loss_stage.solution if loss_stage else s
    return {
        "format": CERT_FORMAT,
        "version": 1,
        "kind": "solver_bound",
        "proven": False,
        "note": "objective, bound and gap of the loss stage as reported by the solver in floating point; "
                "the bound is not independently proven",
        "solver": {"name": s.solver, "version": s.solver_version},
        "status": res.status,
        "objective": ls.objective if loss_stage else None,
        "bound": res.loss_bound,
        "bound_scope": res.bound_scope,
        **({"checkpoint": CHECKPOINT_NOTE} if s.info.get("checkpoint") else {}),
        "gap": ls.gap if loss_stage else None,
        "written_loss": res.best.loss if res.best else None,
        "written_loss_note": loss_note(res),
        "nodes": sum(st.solution.nodes for st in res.stages),
        "runtime_s": round(sum(st.solution.runtime_s for st in res.stages), 6),
        "stages": [_stage_doc(st) for st in res.stages],
        "time_limit": res.spec.solver.time_limit,
        "node_limit": res.spec.solver.node_limit,
        "model_sha256": res.model_sha256,
        "model": res.model_stats,
        "data_sha256": res.data.sha256(),
        "bnnmilp_version": __version__,
    }


def weights_doc(res: TrainResult) -> dict[str, Any]:
    best = res.best
    assert best is not None
    spec = res.spec.to_dict()
    return {
        "format": WEIGHTS_FORMAT,
        "version": 1,
        "network": spec["network"],
        "training": spec["training"],
        "data": {"path": res.data.path, "sha256": res.data.sha256(), "samples": res.data.n_samples},
        "training_loss": {
            "loss": res.spec.training.loss,
            "value": best.loss,
            "computed": "exact forward pass of these weights (rational arithmetic)",
            "status": res.status,
            "best_so_far": res.status not in ("optimal", "heuristic"),
            **({"checkpoint": CHECKPOINT_NOTE} if res.solution.info.get("checkpoint") else {}),
            "solver_objective": res.stages[0].solution.objective if res.stages else None,
            "solver_bound": res.loss_bound,
            "source": best.source,
        },
        "margin": {
            "epsilon": res.spec.training.epsilon,
            "min_slack": fraction_str(best.min_slack),
            "min_slack_float": float(best.min_slack),
            "epsilon_feasible": best.epsilon_feasible,
        },
        "layers": best.network.to_layers_doc(),
    }


def discard_checkpoints(run_dir: str | Path, created: bool) -> None:
    """After a failed solve: remove the checkpoint files this run wrote (the folder too, when the run created
    it and nothing else is in it), so that a failure leaves nothing that looks like a result."""
    out = Path(run_dir)
    for name in ("weights.yaml", "weights.npz", "certificate.json"):
        (out / name).unlink(missing_ok=True)
    release_run_dir(out)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def write_run(res: TrainResult, run_dir: str | Path, fmt: str | None = None) -> dict[str, Path]:
    """Write the run folder; the weights only when a network exists, as weights.yaml or, for networks with
    more than NPZ_ABOVE parameters (or ``fmt="npz"``), weights.npz. The certificate carries the weights'
    fingerprint, and both files are written together (neither replaced unless both could be written)."""
    out = Path(run_dir)
    cert, doc = run_documents(res)
    npz = False
    if res.best is not None:
        net = res.best.network
        npz = (fmt or ("npz" if sum(w.size + t.size for w, t in zip(net.weights, net.thresholds, strict=True))
                       > NPZ_ABOVE else "yaml")) == "npz"
    return write_pair(out, cert, doc, npz)


def run_documents(res: TrainResult) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A run's certificate (with the fingerprint of its weights) and weights documents (None: no network)."""
    cert = certificate_doc(res)
    if res.best is None:
        return cert, None
    cert["weights_sha256"] = res.best.network.sha256()
    return cert, weights_doc(res)


def write_pair(out: Path, cert: dict[str, Any], doc: dict[str, Any] | None, npz: bool = False) -> dict[str, Path]:
    """A run folder's weights (YAML, or NPZ) and certificate, written together (``write_together``)."""
    import json

    items: list[tuple[Path, Any]] = []
    if doc is not None and npz:
        items.append((out / "weights.npz", lambda tmp: tmp.write_bytes(weights_npz_bytes(doc))))
    elif doc is not None:
        items.append((out / "weights.yaml", lambda tmp: tmp.write_text(yaml_text(doc), encoding="utf-8")))
    text = json.dumps(strict_json(cert), indent=2, allow_nan=False) + "\n"
    items.append((out / "certificate.json", lambda tmp: tmp.write_text(text, encoding="utf-8")))
    written = write_together(items)
    return {"weights": written[0], "certificate": written[1]} if len(written) == 2 else {"certificate": written[0]}


def check_bound(p: Path, net: Network) -> None:
    """A run folder's weights and certificate must be of one run: the certificate's ``weights_sha256`` (when it
    has one) is the fingerprint of these weights. Files of two runs (two writers, a copy, a half-failed write)
    are refused."""
    from bnnmilp.io.yamlio import loads_json, read_input

    cert = p.parent / "certificate.json"
    if p.name not in ("weights.yaml", "weights.npz") or not cert.is_file():
        return
    doc = loads_json(read_input(cert, WeightsError), cert, WeightsError)
    said = doc.get("weights_sha256") if isinstance(doc, dict) else None
    if said is not None and said != net.sha256():
        raise WeightsError(str(p.parent), None, f"{p.name} and certificate.json are not of the same run (weights "
                                                f"fingerprint {net.sha256()[:12]}, the certificate's {str(said)[:12]})"
                                                ": train again into an empty folder")


def write_weights_npz(path: str | Path, doc: dict[str, Any]) -> Path:
    """A weights document as NPZ (:func:`weights_npz_bytes`), written atomically."""
    data = weights_npz_bytes(doc)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def weights_npz_bytes(doc: dict[str, Any]) -> bytes:
    """A weights document as NPZ: the header (every key but ``layers``) as JSON, then one float64 array per
    layer's weights and thresholds (``W0``, ``t0``, ...; a sparse layer as ``W0.indptr``, ``W0.indices``,
    ``W0.data``, ``W0.shape``): exact doubles, loaded without YAML parsing."""
    import io
    import json

    import numpy as np

    header = {k: v for k, v in doc.items() if k != "layers"}
    arrays = {"header": np.array(json.dumps(header))}
    for l, layer in enumerate(doc["layers"]):
        W = layer["weights"]
        if is_sparse(W):  # W<l>.indptr, W<l>.indices, W<l>.data, W<l>.shape
            arrays.update({f"W{l}.{part}": np.asarray(getattr(W, part)) for part in ("indptr", "indices", "data")})
            arrays[f"W{l}.shape"] = np.asarray(W.shape, dtype=np.int64)
        else:
            arrays[f"W{l}"] = np.asarray(W, dtype=np.float64)
        arrays[f"t{l}"] = np.asarray(layer["thresholds"], dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_network(path: str | Path, net: Network, header: dict[str, Any]) -> Path:
    """A network with its file header: YAML for NET.yaml, NET.yml and standard output; NPZ (sparse layers
    kept sparse) for any other name. Readers tell the two apart by their content, and a name without the
    extension ("-o net") must not cost every later command the YAML parse of a large network (an imported
    MNIST network: 12 s to load as YAML, 5 ms as NPZ)."""
    if is_stdio(path) or Path(path).suffix.lower() in (".yaml", ".yml"):
        return write_yaml_atomic(path, {**header, "layers": net.to_layers_doc()})
    return write_weights_npz(path, {**header, "layers": net.to_layers_doc(sparse=True)})


def read_weights_npz(p: Path) -> dict[str, Any]:
    """The weights document of an NPZ file (nothing is unpickled)."""
    from bnnmilp.io.npz import read_npz
    from bnnmilp.io.yamlio import loads_json

    arrays = read_npz(p, WeightsError, "a bnnmilp weights NPZ file")
    if "header" not in arrays:
        raise WeightsError(str(p), "header", "missing array")
    text = arrays.pop("header")
    if text.shape != () or text.dtype.kind != "U":
        raise WeightsError(str(p), "header", "expected one JSON text")
    header = loads_json(str(text), f"{p} (header)", WeightsError, "JSON")
    if not isinstance(header, dict):
        raise WeightsError(str(p), "header", "expected a JSON object")
    layers, used = [], 0
    every = "expected arrays W0, t0, W1, t1, ... for every layer"
    while any(k in (f"W{len(layers)}", f"t{len(layers)}") or k.startswith(f"W{len(layers)}.") for k in arrays):
        l = len(layers)
        if f"t{l}" not in arrays:
            raise WeightsError(str(p), f"W{l}", every)
        if f"W{l}" in arrays:
            W, used = arrays[f"W{l}"], used + 2
        elif any(k.startswith(f"W{l}.") for k in arrays):
            parts = {q: arrays.get(f"W{l}.{q}") for q in ("indptr", "indices", "data", "shape")}
            if any(v is None for v in parts.values()):
                raise WeightsError(str(p), f"W{l}", "expected a sparse layer's W<l>.indptr, .indices, .data, .shape")
            W, used = sparse_layer(str(p), f"W{l}", parts), used + 5
        else:
            raise WeightsError(str(p), f"W{l}", every)
        layers.append({"weights": W, "thresholds": arrays[f"t{l}"]})
    if used != len(arrays):
        raise WeightsError(str(p), "layers", "expected arrays W0, t0, W1, t1, ... and nothing else")
    return {**header, "layers": layers}


def sparse_layer(path: str, key: str, parts: dict[str, np.ndarray]) -> Csr:
    """A CSR layer from its arrays, checked: integer index arrays, rows in order, columns in range and sorted."""
    indptr, indices, data, shape = parts["indptr"], parts["indices"], parts["data"], parts["shape"]
    ok = (shape.shape == (2,) and indptr.ndim == indices.ndim == data.ndim == 1
          and all(np.issubdtype(a.dtype, np.integer) for a in (indptr, indices, shape))
          and np.issubdtype(data.dtype, np.floating) and indices.size == data.size)
    if ok:
        rows, cols = int(shape[0]), int(shape[1])
        ok = (rows >= 1 and cols >= 1 and indptr.size == rows + 1 and indptr[0] == 0 and indptr[-1] == data.size
              and bool(np.all(np.diff(indptr) >= 0)) and bool(np.all((indices >= 0) & (indices < cols))))
        if ok:
            row_of = np.repeat(np.arange(rows), np.diff(indptr))
            ok = bool(np.all((np.diff(row_of) > 0) | (np.diff(indices) > 0)))
    if not ok:
        raise WeightsError(path, key, "expected a CSR matrix: shape (2 integers), indptr (rows + 1, from 0, "
                                      "non-decreasing), indices (sorted columns in range), data (floats)")
    return Csr((rows, cols), indptr.astype(np.int64), indices.astype(np.int64), data.astype(np.float64))


@dataclass
class WeightsFile:
    """A weights file read back: its path, spec, network and the whole document (claims included)."""

    path: str
    spec: Spec
    network: Network
    doc: dict[str, Any]


def load_weights(path: str | Path, ensemble: bool = True) -> WeightsFile:
    """Read a weights file (YAML or NPZ, or the one inside a run folder).

    Parameters
    ----------
    path : str or Path
        A run folder, ``weights.yaml``, ``weights.npz``, or ``-`` (standard input).
    ensemble : bool
        Whether an ensemble file is accepted (it gives an EnsembleFile); with False it is a one-line error.

    Returns
    -------
    WeightsFile
        ``.network`` (a :class:`Network`), ``.spec`` and ``.doc``, validated against each other.
    """
    from bnnmilp.io.yamlio import sniff

    p = Path(path)
    if p.is_dir():
        p = p / "weights.yaml" if (p / "weights.yaml").exists() or not (p / "weights.npz").exists() \
            else p / "weights.npz"
    doc = read_weights_npz(p) if sniff(p) == "npz" else read_yaml(p, WeightsError)
    if doc.get("format") == "bnnmilp-ensemble":
        if not ensemble:
            raise WeightsError(str(p), "format", "one network; this is a one-vs-one ensemble: pass one of its "
                                                 "members' folders (members/A_B) instead")
        return load_ensemble(p, doc)  # type: ignore[return-value]
    if doc.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(str(p), "format", f"expected {WEIGHTS_FORMAT!r}")
    return weights_file(p, doc)


def weights_file(p: Path, doc: dict[str, Any], where: str = "") -> WeightsFile:
    """One network's weights document (a file's, or an ensemble member's at key path ``where``), validated:
    its spec, and layers of the spec's shape."""
    if not isinstance(doc, dict):
        raise WeightsError(str(p), where or "(top level)", "expected a mapping")
    for key in ("network", "layers"):
        if key not in doc:
            raise WeightsError(str(p), f"{where}{key}", "missing required key")
    if isinstance(doc.get("version", 1), bool) or doc.get("version", 1) != 1:
        raise WeightsError(str(p), f"{where}version", f"expected 1 (the only weights format version), got "
                                                      f"{doc.get('version')!r}")
    spec = parse_spec({"network": doc["network"], "training": doc.get("training", {})}, str(p))
    net = Network.from_layers_doc(doc["layers"], str(p), list(spec.network.layers))
    if not where:
        check_bound(p, net)
    return WeightsFile(str(p), spec, net, doc)


def ensemble_doc(spec: Spec, data_path: str, records: list[dict]) -> dict[str, Any]:
    """The ensemble file's document: every finished member's classes, folder and weights."""
    members = []
    for rec in records:
        res = rec.get("result") or {}
        a, b = res.get("classes") or rec["payload"]["classes"]
        if res.get("weights"):
            members.append({"classes": [a, b], "folder": f"members/{a}_{b}", "weights": res["weights"]})
    return {"format": "bnnmilp-ensemble", "version": 1, "kind": "ovo", "n_classes": spec.network.n_outputs,
            "tie_break": "lowest class index among the most votes", "data": data_path, "members": members}


def write_ensemble(run_dir: str | Path, spec: Spec, data_path: str, records: list[dict]
                   ) -> tuple[dict[str, Path], dict[str, Any]]:
    """Members' folders (weights.yaml, certificate.json) and the combined RUN_DIR/weights.yaml; returns the
    written paths and the ensemble's document (so a caller need not parse the file it just wrote)."""
    out = Path(run_dir)
    for rec in records:
        res = rec.get("result") or {}
        a, b = res.get("classes") or rec["payload"]["classes"]
        if res.get("certificate"):
            write_pair(out / "members" / f"{a}_{b}", res["certificate"], res.get("weights"))
    doc = ensemble_doc(spec, data_path, records)
    return {"weights": write_yaml_atomic(out / "weights.yaml", doc), "members": out / "members"}, doc


def load_ensemble(p: Path, doc: dict[str, Any]) -> EnsembleFile:
    """An ensemble file's members, each validated like a weights file."""
    from bnnmilp.network.ensemble import EnsembleFile

    members = []
    classes = []
    for i, m in enumerate(doc.get("members") or []):
        try:
            wdoc = m["weights"]
            classes.append((int(m["classes"][0]), int(m["classes"][1])))
        except (KeyError, TypeError, ValueError, IndexError):
            raise WeightsError(str(p), f"members[{i}]", "expected classes [a, b] and weights") from None
        members.append(weights_file(p, wdoc, f"members[{i}].weights."))
    if not members:
        raise WeightsError(str(p), "members", "expected a non-empty list")
    return EnsembleFile(str(p), int(doc["n_classes"]), classes, members, doc)
