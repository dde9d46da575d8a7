"""Generate a notebook from a `# %%` script, so the two can never drift apart.

    python examples/make_notebook.py            # rewrite predictive_maintenance.ipynb
    python examples/make_notebook.py --check    # exit 1 if the committed notebook is stale

A line `# %%` starts a code cell, `# %% [markdown]` a Markdown cell whose lines are
comments (`# ` is stripped). Cell ids are numbered, not random, so the output is
byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "predictive_maintenance.py"
NOTEBOOK = HERE / "predictive_maintenance.ipynb"

_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _cells(script: str) -> list[tuple[str, list[str]]]:
    cells: list[tuple[str, list[str]]] = []
    for line in script.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    return cells


def _markdown(lines: list[str]) -> str:
    out = []
    for line in lines:
        if line and not line.startswith("#"):
            raise ValueError(f"a Markdown cell holds a line that is not a comment: {line!r}")
        out.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(out).strip("\n")


def render(script: str) -> str:
    """The notebook (JSON text) for a `# %%` script."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(_KERNELSPEC)
    notebook.metadata["language_info"] = {"name": "python"}
    for index, (kind, lines) in enumerate(_cells(script)):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(_markdown(lines))
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines).strip("\n"))
        cell["id"] = f"cell-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return str(nbformat.writes(notebook)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    text = render(SCRIPT.read_text())
    if args.check:
        if not NOTEBOOK.exists() or NOTEBOOK.read_text() != text:
            print(
                f"{NOTEBOOK.name} is stale: run python examples/make_notebook.py", file=sys.stderr
            )
            return 1
        return 0
    NOTEBOOK.write_text(text)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
