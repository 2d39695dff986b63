"""Regenerate the generated parts of docs/ (run by `make docs`).

Writes the settings table into docs/configuration.md and the command reference into
docs/cli.md, between their markers; the hand-written text around them stays. With
``--check``, writes nothing and exits 1 when a page is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from contactsync.cli.reference import SECTIONS, spliced

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for section in SECTIONS:
        page = ROOT / section.path
        text = page.read_text()
        fresh = spliced(text, section)
        if fresh == text:
            continue
        stale.append(section.path)
        if not check:
            page.write_text(fresh)
            print(f"updated {section.path}")
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
