"""The languages of the customer's and the invited technician's pages (the join page and
the call in it): English, German, French and Spanish. The console stays English.

The words are English in the templates and the browser client (``_("...")`` in the
templates, ``t("...")`` in the scripts), and each other language's are in a gettext PO
catalogue, ``web/locale/LANG.po``, keyed by the English: the standard format every
translation tool and translator reads. ``scripts/messages`` extracts the English into
``web/locale/messages.pot`` and merges it into the catalogues (docs/ui.md, Languages).

The server reads the catalogues once, renders the join page in the language the address
asks for (``?lang=de``, the page's own switch) or else the browser's
(``Accept-Language``), and gives the page's scripts that language's words. Only
``{name}`` placeholders; no plural forms (the pages are written so as to need none).
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The languages, by their code, each named as its speakers name it (the switch's words).
LANGUAGES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "web" / "locale"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


class CatalogueError(ValueError):
    """A PO file this module cannot read as it must: a line it does not know, a plural
    form, a translation whose placeholders are not the English's."""


def read_po(text: str) -> dict[str, str]:
    """The translations of a PO file, English to translated: entries marked fuzzy or not
    yet translated (an empty ``msgstr``) are left out, as gettext leaves them out, and so
    is the header (the empty ``msgid``)."""
    entries: list[tuple[str, str, bool]] = []
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None
    fuzzy = next_fuzzy = False

    def finish() -> None:
        if msgid is not None and msgstr is not None:
            entries.append(("".join(msgid), "".join(msgstr), fuzzy))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#~"):  # an obsolete entry: kept by msgmerge, used by no one
            continue
        if line.startswith("#,"):
            next_fuzzy = "fuzzy" in (flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid":
            finish()
            msgid, msgstr, current = [], None, None
            fuzzy, next_fuzzy = next_fuzzy, False
            current = msgid
        elif keyword == "msgstr" and msgid is not None and msgstr is None:
            msgstr = []
            current = msgstr
        elif keyword in ("msgid_plural", "msgctxt") or keyword.startswith("msgstr["):
            raise CatalogueError(f"line {number}: {keyword} is not used in these catalogues")
        elif line.startswith('"') and current is not None:
            rest = line
        else:
            raise CatalogueError(f"line {number}: not a PO line: {raw!r}")
        if not (rest.startswith('"') and rest.endswith('"') and len(rest) >= 2):
            raise CatalogueError(f"line {number}: a string in double quotes was expected")
        assert current is not None
        current.append(_unquote(rest, number))
    finish()
    messages: dict[str, str] = {}
    for english, translated, is_fuzzy in entries:
        if not english or not translated or is_fuzzy:
            continue
        if sorted(PLACEHOLDER.findall(english)) != sorted(PLACEHOLDER.findall(translated)):
            raise CatalogueError(f"{english!r}: the translation's placeholders differ")
        messages[english] = translated
    return messages


def _unquote(quoted: str, number: int) -> str:
    """A PO string's text: C escapes, the only ones gettext writes (\\n, \\t, \\", \\\\)."""
    if re.search(r'(?<!\\)(?:\\\\)*"', quoted[1:-1]):
        raise CatalogueError(f"line {number}: an unescaped double quote")
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError) as error:
        raise CatalogueError(f"line {number}: {error}") from None
    if not isinstance(value, str):
        raise CatalogueError(f"line {number}: not a string")
    return value


@dataclass(frozen=True)
class Catalogue:
    """One language's words."""

    language: str
    messages: Mapping[str, str]

    def gettext(self, english: str, **params: object) -> str:
        """The translation of ``english`` (itself where there is none), its ``{name}``
        placeholders filled from ``params``; a placeholder without a value stays."""
        text = self.messages.get(english, english)
        return PLACEHOLDER.sub(
            lambda match: str(params[match[1]]) if match[1] in params else match[0], text)

    @functools.cached_property
    def json(self) -> str:
        """The words for the page's scripts, as JSON safe inside a <script> element: made
        once per language (``catalogue`` keeps each), not at each load of the page."""
        return (json.dumps(dict(self.messages), ensure_ascii=False, sort_keys=True)
                .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


ENGLISH = Catalogue(DEFAULT, {})


@functools.cache
def catalogue(language: str) -> Catalogue:
    """A language's catalogue, read once (``web/locale/LANG.po``); English is the
    words as written."""
    if language == DEFAULT:
        return ENGLISH
    if language not in LANGUAGES:
        raise KeyError(language)
    path = LOCALE_DIR / f"{language}.po"
    try:
        return Catalogue(language, read_po(path.read_text(encoding="utf-8")))
    except CatalogueError as error:
        raise CatalogueError(f"{path}: {error}") from None


def negotiate(asked: str | None, accept_language: str | None) -> str:
    """The language to show: the one the address asks for (``?lang=``) if there is such a
    language, else the first of the browser's (``Accept-Language``, by its weights, a
    region matching its language: ``de-AT`` is ``de``), else English."""
    if asked in LANGUAGES:
        return asked
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "")[:1000].split(",")[:50]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if not 0 < weight <= 1:
            continue
        language = tag.strip().lower().split("-", 1)[0]
        if language in LANGUAGES:
            ranked.append((-weight, position, language))
    return min(ranked)[2] if ranked else DEFAULT
