"""Console languages: English (the msgids) and Italian, from gettext catalogues.

The ``.po`` files under ``locale/`` are read with babel when first needed (no compile step for
whoever installs contactsync). A user's language is their setting, else the browser's
``Accept-Language``, else English. ``python -m contactsync.web.i18n`` lists the strings of the
templates and the console's Python code that a catalogue lacks.
"""

from __future__ import annotations

import functools
import gettext
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = {"en": "English", "it": "Italiano"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
WEB_DIR = Path(__file__).parent

Gettext = Callable[..., str]


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=lang)


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT or not po_path(lang).exists():
        return gettext.NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(lang))
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_for(lang: str) -> Gettext:
    """``_("text")`` or ``_("Hello %(name)s", name=…)``: translated, then formatted."""
    tr = translations(lang)

    def _(message: str, **values: Any) -> str:
        text = tr.gettext(message)
        return text % values if values else text

    return _


def negotiate(accept_language: str | None) -> str:
    """The first language of an ``Accept-Language`` header we have, by quality; else English."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, i, primary))
    return min(choices)[2] if choices else DEFAULT


def choose(user_language: str | None, cookie: str | None, accept_language: str | None) -> str:
    for lang in (user_language, cookie):
        if lang in LANGUAGES:
            return lang
    return negotiate(accept_language)


# --- extraction (development) ----------------------------------------------------------------


def used_messages() -> Iterator[tuple[str, str]]:
    """(msgid, where) for every ``_("…")`` in the templates and the console's Python modules."""
    from babel.messages.extract import extract_from_dir

    method_map = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
    options = {"templates/**.html": {"extensions": ""}}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), method_map, options, keywords={"_": None}
    ):
        if isinstance(message, str):
            yield message, f"{filename}:{lineno}"


def missing(lang: str) -> dict[str, str]:
    catalog = read_catalog(lang)
    return {
        msgid: where
        for msgid, where in used_messages()
        if not (catalog.get(msgid) and catalog.get(msgid).string)  # type: ignore[union-attr]
    }


def main() -> None:
    gaps = missing(sys.argv[1] if len(sys.argv) > 1 else "it")
    for msgid, where in sorted(gaps.items(), key=lambda kv: kv[1]):
        print(f"{where}\t{msgid}")
    sys.exit(1 if gaps else 0)


if __name__ == "__main__":
    main()
