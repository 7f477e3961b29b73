"""Issue 25: each measured number has one home, benchmarks/README.md; README.md and docs/*.md link to it.

A reported mean ± std or a "nats/char" figure is a measurement, so none may appear in README.md or
docs/*.md. Exceptions are listed in ALLOWED with a reason each.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A number with a ± sign (mean ± std), or a number followed by nats/char.
MEASURED = re.compile(r"[-+]?\d[\d.,]*\s*±\s*\d[\d.,]*|[-+]?\d[\d.,]*\s*nats?\s*(?:/|per)\s*char")
# "± std" with no number (a description of an output format) is not a measurement.
ALLOWED: dict[str, str] = {
    # "<text as matched>": "reason",
}


def test_no_measured_number_outside_benchmarks_readme():
    found = []
    for page in PAGES:
        for lineno, line in enumerate(page.read_text().splitlines(), 1):
            for m in MEASURED.finditer(line):
                if m.group(0) not in ALLOWED:
                    found.append(f"{page.relative_to(ROOT)}:{lineno}: {m.group(0)!r}")
    assert not found, (
        "measured numbers belong in benchmarks/README.md (with date, machine, command); "
        "link to its section instead:\n" + "\n".join(found)
    )


def test_the_pattern_catches_what_it_should():
    assert MEASURED.search("quality 2.352 ± 0.007")
    assert MEASURED.search("+0.786 ± 0.079")
    assert MEASURED.search("worse by 0.8 nats/char")
    assert not MEASURED.search("mean ± std [min, max] n=3")
    assert not MEASURED.search("torch==2.13.0, 0.65 accuracy threshold")


def test_benchmarks_readme_holds_the_numbers():
    text = (ROOT / "benchmarks" / "README.md").read_text()
    assert MEASURED.search(text)
