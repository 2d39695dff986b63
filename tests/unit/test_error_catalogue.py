"""The error catalogue is honest: every code in it is raised somewhere, and only those."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from contactsync.errors import CATALOGUE

SRC = Path(__file__).parents[2] / "src" / "contactsync"
CODE = re.compile(r"E\d{3}")


def codes_in_source() -> dict[str, list[str]]:
    """Every ``"E…"`` string literal in src (``code="E…"``, FieldProblem codes, …) → its files.

    errors.py is left out: it defines the catalogue, so its literals prove nothing is raised.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                found.setdefault(node.value, []).append(str(path.relative_to(SRC)))
    return found


def test_every_code_raised_is_in_the_catalogue() -> None:
    unknown = {code: files for code, files in codes_in_source().items() if code not in CATALOGUE}
    assert unknown == {}, "add these codes to CATALOGUE in src/contactsync/errors.py"


def test_every_catalogue_code_is_raised_somewhere() -> None:
    unused = sorted(set(CATALOGUE) - set(codes_in_source()))
    assert unused == [], "raise these codes somewhere, or remove them from CATALOGUE"
