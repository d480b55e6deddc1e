"""Every command shown in the README and the docs runs, in page order, in a fresh folder that holds the
repository's samples and configs; where a page shows a command's output, the output contains it.

Collected: fenced ``bash`` blocks and indented lines that start with ``$ `` (the indented lines after
one, up to a blank line, are its output; ``...`` stands for anything) or with a command (``bnnmilp``,
``cat``, ``ln``). Not run here: installation lines (CI runs the README's test command itself) and
docs/benchmarks.md (one command per benchmark, minutes to hours each).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")]
INSTALL = re.compile(r"^(pip install\b[^&]*|python3? -m (venv|pytest)\b.*|\. \.venv/bin/activate)$")
COMMAND = re.compile(r"^    (\$ )?((bnnmilp|bnnmilp-vnnlib|cat|ln|gunzip) .*)$")
NEGATIVE_ANSWER = ("bnnmilp verify", "bnnmilp-vnnlib verify")  # exit 1: a definite "no" (not robust, sat)


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) in page order; installation steps dropped from && chains."""
    found: list[tuple[int, str, list[str]]] = []
    for m in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
        start = text.count("\n", 0, m.start())
        found += [(start + i, line, []) for i, line in enumerate(m.group(1).splitlines()) if line.strip()]
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if (m := COMMAND.match(line)) is None:
            continue
        shown = []
        if m.group(1):
            for nxt in lines[i + 1:]:
                if not nxt.strip() or nxt.startswith("    $ ") or not nxt.startswith("    "):
                    break
                shown.append(nxt.strip())
        found.append((i, m.group(2), shown))
    out = []
    for _, line, shown in sorted(found, key=lambda t: t[0]):
        steps = [s.strip() for s in line.split(" && ")]
        steps = [s for s in steps if not INSTALL.match(re.sub(r"\s+#.*$", "", s))]
        if steps:
            out.append((" && ".join(steps), shown))
    return out


def squeeze(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    for name in ("samples", "configs", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def test_the_collector_finds_the_quick_start_and_the_shown_outputs():
    readme = commands((ROOT / "README.md").read_text())
    assert readme[0][0].startswith("bnnmilp train configs/digits.yaml samples/digits_k10.yaml -o runs/digits")
    shown = dict(commands((ROOT / "docs/importing.md").read_text()))
    assert any(out and out[-1].startswith("0,robust,enum,") for out in shown.values())


def run_all(cmds: list[tuple[str, list[str]]], where: str, sandbox: Path) -> None:
    """Run the commands in order in the sandbox; a verify may answer "no" (exit 1); shown output must appear."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NO_COLOR": "1", "COLUMNS": "200"}
    for cmd, shown in cmds:
        r = subprocess.run(["bash", "-c", cmd], cwd=sandbox, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
        allowed = (0, 1) if cmd.startswith(NEGATIVE_ANSWER) else (0,)
        assert r.returncode in allowed, f"{where}: {cmd}\n{r.stderr[-2000:]}"
        said = squeeze(r.stdout + r.stderr)
        for part in squeeze(" ".join(shown)).split("..."):
            assert part in said, f"{where}: {cmd}\nshown: {part}\ngot: {(r.stdout + r.stderr)[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if commands(p.read_text())], ids=lambda p: p.name)
def test_every_command_on_the_page_runs(page: Path, sandbox: Path):
    run_all(commands(page.read_text()), page.name, sandbox)


def help_examples() -> list[tuple[str, list[str]]]:
    """Every command's --help examples, train's and import's first (the others use their outputs)."""
    import click

    from bnnmilp.cli import main

    ctx = click.Context(main, info_name="bnnmilp")
    out = []
    for name in sorted(main.commands, key=lambda n: (n not in ("train", "import"), n != "train", n)):
        text = main.commands[name].get_help(click.Context(main.commands[name], info_name=name, parent=ctx))
        if m := re.search(r"Examples?:\n(.*?)(?:\n\n|\Z)", text, re.S):
            block = m.group(1).replace("\\\n", " ")
            out += [(re.sub(r"\s+", " ", line.strip()), []) for line in block.splitlines() if line.strip()]
    return out


def test_help_examples_are_collected():
    cmds = [c for c, _ in help_examples()]
    assert cmds[0].startswith("bnnmilp train") and len(cmds) >= 30
    assert any(c.startswith("bnnmilp verify samples/conv_bnn.onnx --vnnlib") for c in cmds)


@pytest.mark.slow
def test_every_help_example_runs(sandbox: Path):
    run_all(help_examples(), "--help", sandbox)
