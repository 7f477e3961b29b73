"""MkDocs hook: pages generated at build time, so that nothing in docs/ can drift from its source.

* ``cli.md``: the CLI reference, the output of ``seqgan-env --help`` and of ``seqgan-env <command> --help``
  for every subcommand the parser has (one Python process runs them all; no file is written to docs/);
* ``changelog.md``: ``CHANGELOG.md`` at the repository root;
* ``benchmarks/README.md`` and the plots beside it: the benchmark tables, where the numbers live;
* ``datasets/README.md``: the shipped data's sources and licences (``seqgan_env/datasets/README.md``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
MARK = "\x00--8<-- seqgan-env help of: "

# Runs in a child interpreter: `main([command, "--help"])` for the top level and every subcommand, each
# printed after a marker line. argparse and tyro print to stdout and exit through SystemExit.
_HELP_SCRIPT = r"""
import contextlib, io, sys
from seqgan_env.cli import build_parser, main
parser = build_parser()
sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
for argv in [[]] + [[name] for name in sub.choices]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(argv + ["--help"])
        except SystemExit:
            pass
    sys.stdout.write(MARK + " ".join(argv) + "\n" + buf.getvalue())
"""


def _help_texts() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", f"MARK = {MARK!r}\n" + _HELP_SCRIPT], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"seqgan-env --help failed:\n{out.stderr[-3000:]}")
    texts = {}
    for chunk in out.stdout.split(MARK)[1:]:
        command, _, text = chunk.partition("\n")
        texts[command] = "\n".join(line.rstrip() for line in text.rstrip().splitlines())
    return texts


def cli_markdown() -> str:
    texts = _help_texts()
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the parser (`seqgan-env <command> --help` for every command; "
        "`docs/hooks/gen_cli.py`), so it is what the installed version prints.",
        "",
    ]
    for command, text in texts.items():
        title = f"seqgan-env {command}".strip()
        lines += [f"## `{title}`", "", "```text", text, "```", ""]
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    files.append(File.generated(config, "changelog.md", abs_src_path=str(ROOT / "CHANGELOG.md")))
    files.append(File.generated(config, "datasets/README.md",
                                abs_src_path=str(ROOT / "seqgan_env" / "datasets" / "README.md")))
    for path in sorted((ROOT / "benchmarks").iterdir()):
        if path.name == "README.md" or path.suffix == ".png":
            files.append(File.generated(config, f"benchmarks/{path.name}", abs_src_path=str(path)))
    return files
