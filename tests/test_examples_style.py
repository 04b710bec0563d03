"""The gallery's scripts, shown on the site and downloaded as scripts and notebooks, keep
to the project's line length."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MAX_LINE = 88
"""Characters per line of an example script, text and code alike."""


@pytest.mark.parametrize("script", sorted(EXAMPLES.rglob("*.py")), ids=lambda path: path.name)
def test_example_lines_fit_the_page(script):
    long = [f"{script.relative_to(EXAMPLES)}:{number}: {len(line)} characters"
            for number, line in enumerate(script.read_text(encoding="utf-8").splitlines(), start=1)
            if len(line) > MAX_LINE]
    assert not long, f"lines longer than {MAX_LINE} characters:\n" + "\n".join(long)


def test_there_are_examples():
    assert len(list(EXAMPLES.rglob("plot_*.py"))) >= 10
