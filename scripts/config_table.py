"""Write the README's configuration table from the settings object, so it cannot go stale.

Every row comes from one field of ``marconi.config.Config`` (``marconi.config.SETTINGS``): its environment variable,
its default as shown, what it accepts and what it does::

    .venv/bin/python scripts/config_table.py                    # print the table
    .venv/bin/python scripts/config_table.py --write README.md  # replace the table between the README's markers

``tests/unit/test_settings.py`` checks that the README shows exactly this table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from readme_block import replace_between  # scripts/readme_block.py

from marconi.config import SETTINGS

BEGIN = "<!-- config:begin: written by scripts/config_table.py from marconi/config.py; do not edit by hand -->"
END = "<!-- config:end -->"
HEADER = ("| variable | default | accepts | what it does |", "|---|---|---|---|")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    """The Markdown table of every setting, one row each, in the order ``Config`` declares them."""
    rows = [f"| `{s.env}` | {_cell(s.shown_default)} | {_cell(s.expected)} | {_cell(s.what)} |"
            for s in SETTINGS.values()]
    return "\n".join([*HEADER, *rows])


def replaced(readme: str) -> str:
    """``readme`` with the block between ``BEGIN`` and ``END`` replaced by the current table."""
    return replace_between(readme, BEGIN, END, table())


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into a README (``--write``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="README", help="replace the table between the markers there")
    args = parser.parse_args(argv)
    if args.write is None:
        print(table())
        return 0
    text = args.write.read_text(encoding="utf-8")
    new = replaced(text)
    if new != text:
        args.write.write_text(new, encoding="utf-8")
    print(f"{args.write}: {len(SETTINGS)} settings, {'updated' if new != text else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
