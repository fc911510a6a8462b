"""The join page's languages (videoassist/i18n.py): the catalogues in web/locale, checked
by GNU gettext's own msgfmt and by scripts/messages.py against the words the templates and
scripts use; how the server reads them and picks a language; the page it serves in each
(real server). The pages in a browser: tests/browser/test_languages.py, and the
zero-storage scan in each language, tests/browser/test_call.py."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from markupsafe import escape

from tests.support.server import ServerFactory
from videoassist import errors
from videoassist.domain import invitations
from videoassist.i18n import (
    LANGUAGES,
    LOCALE_DIR,
    CatalogueError,
    catalogue,
    negotiate,
    read_po,
)

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = [language for language in LANGUAGES if language != "en"]


def _messages_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("messages", ROOT / "scripts" / "messages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("messages", module)  # dataclasses looks its module up
    spec.loader.exec_module(module)
    return module


# -- the catalogues ---------------------------------------------------------------------

def test_the_catalogues_are_what_the_pages_say_and_translate_all_of_it() -> None:
    """The template holds every ``_("...")`` and ``t("...")`` of the pages and nothing
    else, and each language translates every one (fails on a word added to a page and
    not to the catalogues: run scripts/messages.py, then translate)."""
    proc = subprocess.run([sys.executable, "scripts/messages.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    words, problems = _messages_script().extract()
    assert problems == []
    assert len(words) > 150  # the join page, the call's controls, notices and states
    for language in TRANSLATED:
        assert set(catalogue(language).messages) == set(words), language


@pytest.mark.parametrize("language", TRANSLATED)
def test_gnu_msgfmt_finds_each_catalogue_valid(language: str) -> None:
    """GNU gettext's msgfmt --check (headers, and each python-brace-format entry's
    placeholders) on each catalogue: the standard tools read them as they are."""
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "msgfmt: Debian's gettext package (scripts/test installs it)"
    proc = subprocess.run([msgfmt, "--check", "--statistics", "-o", "/dev/null",
                           str(LOCALE_DIR / f"{language}.po")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    assert "fuzzy" not in proc.stderr and "untranslated" not in proc.stderr, proc.stderr


def test_a_call_whose_english_is_not_a_literal_is_refused(tmp_path: Path) -> None:
    """``t(name)`` or ``t(`...`)`` could not be found to be translated: the extractor
    names it, and the check fails."""
    module = _messages_script()
    scripts = tmp_path / "js"
    scripts.mkdir()
    (scripts / "a.js").write_text(
        'const a = t("Fine {name}", { name });\n'
        "const b = t(`Hello ${name}`);\n"
        "const c = t(word);\n"
        '// t(x) in a comment is no call\n'
        'const d = t("One " +\n  "two.");\n', encoding="utf-8")
    module.ROOT = tmp_path
    module.SCRIPTS = scripts
    module.TEMPLATES = []
    words, problems = module.extract()
    assert list(words) == ["Fine {name}", "One two."]
    assert problems == ["js/a.js:2: t( takes the English as a string literal",
                        "js/a.js:3: t( takes the English as a string literal"]


def test_po_files_are_read_as_gettext_reads_them() -> None:
    text = r'''# a comment
msgid ""
msgstr ""
"Language: de\n"

#: web/x.js:1
msgid "Plain"
msgstr "Schlicht"

msgid "Two "
"lines \"quoted\"\n"
msgstr "Zwei "
"Zeilen \"zitiert\"\n"

#, fuzzy, python-brace-format
msgid "Guess {name}"
msgstr "Geraten {name}"

msgid "Not yet"
msgstr ""

#~ msgid "Gone"
#~ msgstr "Weg"
'''
    assert read_po(text) == {"Plain": "Schlicht",
                             'Two lines "quoted"\n': 'Zwei Zeilen "zitiert"\n'}


@pytest.mark.parametrize(("text", "words"), [
    ('msgid "Hello {name}"\nmsgstr "Hallo {nom}"\n', "placeholders differ"),
    ('msgid "Hello {name}"\nmsgstr "Hallo"\n', "placeholders differ"),
    ('msgid "One"\nmsgid_plural "Many"\nmsgstr[0] "Eins"\n', "msgid_plural"),
    ('msgid "One"\nmsgstr "Eins" trailing\n', "double quotes"),
    ('msgid "One"\nmsgstr "Ei"ns"\n', "unescaped double quote"),
    ('msgid "One"\nnonsense\n', "not a PO line"),
])
def test_a_catalogue_it_cannot_read_as_meant_is_refused(text: str, words: str) -> None:
    with pytest.raises(CatalogueError, match=words):
        read_po(text)


# -- choosing the language --------------------------------------------------------------

@pytest.mark.parametrize(("asked", "header", "language"), [
    (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
    (None, "fr-CA", "fr"),
    (None, "pt-BR,es;q=0.5,en;q=0.4", "es"),  # Portuguese first, not offered
    (None, "en;q=0.5,de;q=0.8", "de"),  # by weight, not by order
    (None, "es;q=0.8,fr;q=0.8", "es"),  # equal weights: the first
    (None, "de;q=0,fr;q=0.1", "fr"),  # q=0: not wanted
    (None, "ja", "en"),
    (None, None, "en"),
    (None, "de;q=abc, ,;;,=", "en"),  # garbage: nothing usable
    (None, "x," * 5000 + "de", "en"),  # only the first entries are read
    ("es", "de-DE", "es"),  # the page's switch wins
    ("xx", "fr", "fr"),  # a language not offered is ignored
    ("../de", None, "en"),
])
def test_the_language_is_the_address_s_then_the_browser_s_then_english(
        asked: str | None, header: str | None, language: str) -> None:
    assert negotiate(asked, header) == language


def test_words_fill_their_placeholders_and_fall_back_to_english() -> None:
    german = catalogue("de")
    assert german.gettext("Join the call") != "Join the call"
    assert "Anna" in german.gettext("{name} joined the call.", name="Anna")
    assert german.gettext("Not a message {x}", x=1) == "Not a message 1"
    assert german.gettext("{name} joined the call.").count("{name}") == 1  # no value
    with pytest.raises(KeyError):
        catalogue("xx")


# -- the page served --------------------------------------------------------------------

def _page_messages(page: str) -> dict[str, str]:
    match = re.search(r'<script type="application/json" id="messages">(.*?)</script>',
                      page, re.S)
    assert match, "the page carries its words for the scripts"
    messages: dict[str, str] = json.loads(match[1])
    return messages


@pytest.mark.parametrize("language", TRANSLATED)
async def test_the_join_page_speaks_the_browser_s_language(
        server_factory: ServerFactory, language: str) -> None:
    server = await server_factory(company_name="Acme <Heating> & Co")
    words = catalogue(language)
    status, page, headers = await server.request(
        "GET", "/join", headers={"Accept-Language": f"{language}-XX,en;q=0.5"})
    assert status == 200
    assert f'<html lang="{language}">' in page
    assert headers["Content-Language"] == language
    assert "Accept-Language" in headers["Vary"]
    join = words.gettext("Join the call")
    assert f'data-action="join" type="button" disabled>{escape(join)}</button>' in page
    # The company's name goes into the words escaped, as everywhere on the page.
    kicker = words.gettext("Video call with {company}", company="Acme <Heating> & Co")
    assert str(escape(kicker)) in page
    assert "<Heating>" not in page
    assert _page_messages(page) == dict(words.messages)
    # The switch offers each language in its own name, this one chosen.
    for code, name in LANGUAGES.items():
        selected = " selected" if code == language else ""
        assert f'<option value="{code}" lang="{code}"{selected}>{name}</option>' in page


async def test_the_address_s_language_wins_and_english_is_the_default(
        server_factory: ServerFactory) -> None:
    server = await server_factory()
    status, page, headers = await server.request(
        "GET", "/join?lang=es", headers={"Accept-Language": "de"})
    assert status == 200 and '<html lang="es">' in page
    assert headers["Content-Language"] == "es"
    status, page, headers = await server.request("GET", "/join")
    assert status == 200 and '<html lang="en">' in page
    assert ">Join the call</button>" in page
    assert _page_messages(page) == {}
    # The console stays English whatever the browser asks for, and carries no words.
    status, page, _ = await server.request("GET", "/", headers={"Accept-Language": "de"})
    assert status == 200 and '<html lang="en">' in page and 'id="messages"' not in page


def test_the_words_for_the_scripts_cannot_close_their_script_element() -> None:
    """A translation holding ``</script>`` (a catalogue is data from translators) stays
    inside the JSON: the page's HTML never sees a tag in it."""
    from videoassist.i18n import Catalogue

    words = Catalogue("de", {"Hi": "</script><script>alert(1)</script> & <!--"})
    text = words.json
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"Hi": "</script><script>alert(1)</script> & <!--"}


def test_the_join_page_says_the_server_s_refusals_in_its_words() -> None:
    """The server answers in English; join.js knows the answers the join page can get
    (ANSWERS) and says each in the page's language: each of them is one the server or
    the client's fetch really gives, word for word."""
    script = (ROOT / "web" / "static" / "js" / "join.js").read_text(encoding="utf-8")
    block = script[script.index("const ANSWERS"):script.index("]);", script.index("const ANSWERS"))]
    english = [json.loads(key) for key in re.findall(r'\[\s*("(?:[^"\\]|\\.)*"),', block)]
    server_words = {errors.Gone.default_message, errors.TooManyRequests.default_message,
                    errors.Draining.default_message, errors.Unavailable.default_message}
    server_words |= set(re.findall(r'raise Gone\("([^"]+)"\)', inspect.getsource(invitations)))
    client = (ROOT / "web" / "static" / "js" / "api.js").read_text(encoding="utf-8")
    server_words |= set(re.findall(r'new ApiError\(0, "network", "([^"]+)"\)', client))
    assert set(english) == server_words
