#!/usr/bin/env python3
"""The words of the customer's and the invited technician's pages, for translators
(videoassist/i18n.py, docs/ui.md "Languages").

    scripts/messages.py           write web/locale/messages.pot from the English in the
                                  templates and scripts, and merge it into each
                                  web/locale/LANG.po (GNU msgmerge: new words come in
                                  untranslated, gone ones are kept as obsolete, #~)
    scripts/messages.py --check   change nothing; exit 1, saying why, if the template is
                                  not what the sources say or a catalogue lacks a
                                  translation (tests/test_i18n.py runs this)

The English is every ``_("...")`` in the join page's templates and every ``t("...")``
in the browser client's scripts: a string literal, or literals joined with ``+``,
placeholders in braces (``{name}``). A ``t(`` with anything else is refused: its words
could not be translated.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "web" / "locale"
TEMPLATES = [ROOT / "web" / "templates" / name
             for name in ("_base.html", "join.html", "_call.html")]
SCRIPTS = ROOT / "web" / "static" / "js"
LANGUAGES = ("de", "fr", "es")

STRING = r'"(?:[^"\\\n]|\\.)*"'
TEMPLATE_CALL = re.compile(r"\b_\(\s*(" + STRING + r")")
SCRIPT_CALL = re.compile(r"(?<![\w.$])t\(\s*(" + STRING + r"(?:\s*\+\s*" + STRING + r")*)\s*[,)]")
ANY_SCRIPT_CALL = re.compile(r"(?<![\w.$])(?<!function )t\(")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

HEADER = """\
# The words of videoassist's join page and call, in English: the template of the
# catalogues web/locale/LANG.po. Made by scripts/messages.py: do not edit.
msgid ""
msgstr ""
"Project-Id-Version: videoassist\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Content-Transfer-Encoding: 8bit\\n"
"""


@dataclass
class Message:
    english: str
    places: list[str] = field(default_factory=list)


def _literal(text: str) -> str:
    """The value of one JavaScript or Jinja double-quoted string literal (their escapes
    here are JSON's)."""
    value = json.loads(text)
    assert isinstance(value, str)
    return value


def extract() -> tuple[dict[str, Message], list[str]]:
    """The English of the pages, each with where it is written, and the ``t(`` calls
    that are not a literal."""
    found: dict[str, Message] = {}
    problems: list[str] = []

    def add(english: str, path: Path) -> None:
        # The file only, not the line (xgettext's --add-location=file): moving code
        # about changes nothing for translators.
        place = str(path.relative_to(ROOT))
        places = found.setdefault(english, Message(english)).places
        if place not in places:
            places.append(place)

    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        for match in TEMPLATE_CALL.finditer(text):
            add(_literal(match[1]), path)
    for path in sorted(SCRIPTS.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        literal_calls = set()
        for match in SCRIPT_CALL.finditer(text):
            literal_calls.add(match.start())
            parts = re.findall(STRING, match[1])
            add("".join(_literal(part) for part in parts), path)
        for match in ANY_SCRIPT_CALL.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            line = text[line_start:text.find("\n", match.start())]
            if line.lstrip().startswith(("//", "*", "/*")):
                continue
            if match.start() not in literal_calls:
                number = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{number}: t( takes the English "
                                "as a string literal")
    return found, problems


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def template(messages: dict[str, Message]) -> str:
    """The POT file: every message, in the order the sources have them."""
    out = [HEADER.rstrip("\n")]
    for message in messages.values():
        out.append("")
        out.append("#: " + " ".join(message.places))
        if PLACEHOLDER.search(message.english):
            out.append("#, python-brace-format")
        out.append(f"msgid {_quote(message.english)}")
        out.append('msgstr ""')
    return "\n".join(out) + "\n"


def untranslated(po: Path, messages: dict[str, Message]) -> list[str]:
    """The messages a catalogue has no translation for (none, empty or fuzzy)."""
    sys.path.insert(0, str(ROOT))
    from videoassist.i18n import read_po

    have = read_po(po.read_text(encoding="utf-8"))
    return [english for english in messages if english not in have]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing: say what is out of date, exit 1 if anything")
    args = parser.parse_args()
    messages, problems = extract()
    pot = LOCALE / "messages.pot"
    wanted = template(messages)
    if args.check:
        if not pot.exists() or pot.read_text(encoding="utf-8") != wanted:
            problems.append(f"{pot.relative_to(ROOT)} is not what the sources say: "
                            "run scripts/messages.py")
        for language in LANGUAGES:
            po = LOCALE / f"{language}.po"
            if not po.exists():
                problems.append(f"{po.relative_to(ROOT)} is missing")
                continue
            for english in untranslated(po, messages):
                problems.append(f"{po.relative_to(ROOT)}: no translation of {english!r}")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    LOCALE.mkdir(exist_ok=True)
    pot.write_text(wanted, encoding="utf-8")
    for language in LANGUAGES:
        po = LOCALE / f"{language}.po"
        if po.exists():
            subprocess.run(["msgmerge", "--quiet", "--update", "--backup=none",
                            "--no-fuzzy-matching", "--no-wrap", str(po), str(pot)], check=True)
        else:
            po.write_text(wanted.replace(
                "# The words of videoassist's join page and call, in English: the template of "
                "the\n# catalogues web/locale/LANG.po. Made by scripts/messages.py: do not "
                "edit.\n",
                f"# The words of videoassist's join page and call: {language}.\n").replace(
                '"Content-Transfer-Encoding: 8bit\\n"\n',
                f'"Content-Transfer-Encoding: 8bit\\n"\n"Language: {language}\\n"\n'
                f'"PO-Revision-Date: {datetime.now(UTC):%Y-%m-%d %H:%M}+0000\\n"\n'
                '"Last-Translator: videoassist\\n"\n"Language-Team: videoassist\\n"\n'),
                encoding="utf-8")
        missing = untranslated(po, messages)
        if missing:
            print(f"{po.relative_to(ROOT)}: {len(missing)} to translate", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
