"""Real shell pipelines around bnnmilp (bash): special files, process substitution, symbolic links, umask."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys

import pytest

BNNMILP = f"{sys.executable} -m bnnmilp"


def sh(script: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_encode_to_dev_stdout_into_gzip(repo_root, tmp_path):
    p = sh(f"{BNNMILP} encode {repo_root}/configs/xor.yaml {repo_root}/samples/xor.yaml -o /dev/stdout --format lp "
           f"| gzip > m.lp.gz; echo ${{PIPESTATUS[0]}}", tmp_path)
    assert p.stdout.strip() == "0", p.stderr
    text = gzip.decompress((tmp_path / "m.lp.gz").read_bytes()).decode()
    assert text.startswith("\\* Source Pyomo model") and text.rstrip().endswith("end")
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)  # still what it was


def test_encode_into_a_process_substitution(repo_root, tmp_path):
    p = sh(f"{BNNMILP} encode {repo_root}/configs/xor.yaml {repo_root}/samples/xor.yaml -o >(gzip > m.mps.gz) "
           f"--format mps && sleep 1", tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert gzip.decompress((tmp_path / "m.mps.gz").read_bytes()).decode().rstrip().endswith("ENDATA")


def test_a_symlinked_output_and_the_umask(repo_root, tmp_path):
    (tmp_path / "models").mkdir()
    p = sh(f"ln -s models/xor.lp latest.lp && umask 027 && {BNNMILP} encode {repo_root}/configs/xor.yaml "
           f"{repo_root}/samples/xor.yaml -o latest.lp --format lp", tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "latest.lp").is_symlink() and (tmp_path / "models/xor.lp").read_text().rstrip().endswith("end")
    assert stat.S_IMODE(os.stat(tmp_path / "models/xor.lp").st_mode) == 0o640


def test_standard_input_and_output_chain(repo_root, tmp_path):
    """train reads DATA from a pipe; predict and verify read it from stdin and write to stdout; verify's
    counterexamples feed predict."""
    net, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    p = sh(f"cat {data} | {BNNMILP} train {net} - -o run", tmp_path)
    assert p.returncode == 0, p.stderr
    p = sh(f"{BNNMILP} predict run - -o - < {data} | head -3", tmp_path)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "index,label,prediction,argmax_prediction,bits"
    assert len(p.stdout.splitlines()) == 3
    p = sh(f"{BNNMILP} verify run - --robust --eps 0.125 --counterexamples - < {data} "
           f"| {BNNMILP} predict run - --json", tmp_path)
    import json

    out = json.loads(p.stdout)
    assert out["samples"] >= 1  # the counterexamples, read back as a data set by predict
    p = sh(f"{BNNMILP} encode {net} - -o - --format mps < {data} | gzip | gunzip | tail -1", tmp_path)
    assert p.stdout.strip() == "ENDATA", p.stderr


def test_one_standard_input_and_one_standard_output(repo_root, tmp_path):
    net, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    p = sh(f"cat {net} | {BNNMILP} train - - -o run", tmp_path)
    assert p.returncode == 2 and "give only one input as -" in p.stderr and not (tmp_path / "run").exists()
    p = sh(f"{BNNMILP} encode {net} {data} -o - --format lp --json", tmp_path)
    assert p.returncode == 2 and p.stdout == "" and "--json" in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1


def test_single_file_outputs_to_standard_output(repo_root, tmp_path):
    lp = repo_root / "samples/guzelsoy_ralphs.lp"
    p = sh(f"{BNNMILP} grad {lp} --wrt rhs -o - | head -1", tmp_path)
    assert p.stdout == "name,gradient\n", p.stderr
    p = sh(f"{BNNMILP} certify {lp} --format vipr -o - | head -1", tmp_path)
    assert p.stdout == "VER 1.0\n", p.stderr
    p = sh(f"{BNNMILP} value-function {lp} --row b --from -1 --to 1 --steps 3 -o - | wc -l", tmp_path)
    assert p.stdout.strip() == "4", p.stderr  # header and three points
    assert list(tmp_path.iterdir()) == []  # nothing written beside


def test_progress_in_a_log_is_plain_and_unwrapped(repo_root, tmp_path):
    import re

    net, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    assert sh(f"{BNNMILP} train {net} {data} -o run 2> train.log", tmp_path).returncode == 0
    steps = (tmp_path / "train.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d building the training MILP \(8 samples", steps, re.M), steps
    assert re.search(r"built in \d+\.\d\ds: 49 variables, 112 rows; solving$", steps, re.M), steps
    verify = f"{BNNMILP} verify run {data} --robust --eps 0.125"
    log = sh(f"{verify} 2>&1 >/dev/null", tmp_path).stdout
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d verifying: 8/8 samples  elapsed \d+\.\ds$", log, re.M), log
    assert "\x1b[" not in log  # no control characters in a log
    assert "verifying:" not in sh(f"{verify} --progress none 2>&1 >/dev/null", tmp_path).stdout
    quiet = sh(f"{verify} --quiet 2>&1 >/dev/null", tmp_path)
    assert quiet.stdout == "" and quiet.returncode in (0, 1)
    table = sh(f"{verify} 2>/dev/null", tmp_path).stdout.splitlines()  # the per-sample table is data: CSV
    assert table[0] == "index,answer,method,distance,min_eps_bound,time_s,note" and len(table) == 9
    enc = sh(f"{BNNMILP} encode {net} {data} -o m.lp 2>&1 >/dev/null", tmp_path).stdout
    assert re.search(r"model_sha256 +│ [0-9a-f]{64} ", enc), enc  # the whole fingerprint on one line


def test_every_command_shows_a_pipeline_in_its_help():
    from click.testing import CliRunner

    from bnnmilp.cli import main

    for name in sorted(main.commands):
        text = CliRunner().invoke(main, [name, "--help"]).output
        assert any(" | " in line and "bnnmilp" in line for line in text.splitlines()), name


@pytest.mark.slow
def test_tables_are_csv_on_stdout_and_tee_and_timeout_work(repo_root, tmp_path):
    net, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    assert sh(f"{BNNMILP} train {net} {data} -o run 2>/dev/null", tmp_path).returncode == 0
    p = sh(f"{BNNMILP} predict run {data} 2>/dev/null | tee pred.csv | cut -d, -f3 | tail -n +2 | sort | uniq -c",
           tmp_path)
    assert (tmp_path / "pred.csv").read_text().splitlines()[0] == "index,label,prediction,argmax_prediction,bits"
    assert sum(int(line.split()[0]) for line in p.stdout.splitlines()) == 8
    p = sh(f"{BNNMILP} value-function {repo_root}/samples/guzelsoy_ralphs.lp --row b --from -1 --to 1 --steps 3 "
           f"2>/dev/null", tmp_path)
    assert p.stdout.splitlines()[0] == "b,z" and len(p.stdout.splitlines()) == 4
    # timeout -s TERM ends a long run like Ctrl-C: exit 124 from timeout, the best network kept and labelled
    p = sh(f"timeout -s TERM 8 {BNNMILP} train {repo_root}/configs/digits_milp.yaml "
           f"{repo_root}/samples/digits_k10.yaml -o long --time-limit 120 2>/dev/null; echo $?", tmp_path)
    assert p.stdout.split()[-1] == "124"
    assert "best_so_far: true" in (tmp_path / "long/weights.yaml").read_text()


def test_models_from_standard_input(repo_root, tmp_path):
    lp = repo_root / "samples/guzelsoy_ralphs.lp"
    p = sh(f"cat {lp} | {BNNMILP} grad - --wrt rhs -o -", tmp_path)
    assert p.stdout.splitlines() == ["name,gradient", "b,2.0"], p.stderr
    p = sh(f"{BNNMILP} encode {repo_root}/configs/xor.yaml {repo_root}/samples/xor.yaml -o - --format mps "
           f"| {BNNMILP} certify - -o proof.json --json", tmp_path)
    assert p.returncode == 0, p.stderr
    import json

    assert json.loads(p.stdout)["proven"] is True and (tmp_path / "proof.json").exists()


@pytest.mark.parametrize(("args", "want"), [("['verify', 'r', 'd', '--workers', '2']", "1"),
                                            ("['sweep', 's.yaml', '--scheduler=local']", "1"),
                                            ("['verify', 'r', 'd', '--workers', '1']", "None")])
def test_worker_processes_get_one_blas_thread_each(args, want):
    code = (f"import os; os.environ.pop('OPENBLAS_NUM_THREADS', None); from bnnmilp.cli import "
            f"_one_blas_thread_per_worker as f; f({args}); print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == want


def test_encode_into_a_fifo(repo_root, tmp_path):
    p = sh(f"mkfifo pipe && (gzip < pipe > m.lp.gz &) && {BNNMILP} encode {repo_root}/configs/xor.yaml "
           f"{repo_root}/samples/xor.yaml -o pipe --format lp 2>/dev/null && sleep 1 && test -p pipe && echo fifo",
           tmp_path)
    assert p.stdout.strip() == "fifo", p.stderr  # written through, still a FIFO
    assert gzip.decompress((tmp_path / "m.lp.gz").read_bytes()).decode().rstrip().endswith("end")
