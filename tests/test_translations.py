"""The pages' catalogs: every string translated in every language, compiled catalogs current.

``make translations`` extracts, merges and compiles; these tests fail when
someone adds a string to a page and forgets to run it or to translate it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from registry.http.web import i18n

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "registry" / "http" / "web" / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
LOCALES = [language.locale for language in i18n.LANGUAGES.values() if language.code != i18n.DEFAULT]


def _ids(catalog) -> set:
    return {(message.context, message.id if isinstance(message.id, str) else message.id[0])
            for message in catalog if message.id}


def _placeholders(text) -> set[str]:
    texts = text if isinstance(text, tuple | list) else (text,)
    return {name for t in texts for name in PLACEHOLDER.findall(t or "")}


def test_template_is_current_with_the_pages(tmp_path):
    fresh = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F", "registry/http/web/babel.cfg",
                    "-k", "_l", "-k", "lazy_pgettext:1c,2", "-o", str(fresh), "."], cwd=ROOT, check=True)
    with fresh.open("rb") as new, (CATALOGS / "messages.pot").open("rb") as committed:
        assert _ids(read_po(new)) == _ids(read_po(committed)), "run `make translations`"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_string_is_translated(locale):
    with (CATALOGS / "messages.pot").open("rb") as handle:
        wanted = _ids(read_po(handle))
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    assert _ids(catalog) == wanted
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings) and not message.fuzzy, f"{locale}: {message.id!r} is not translated"
        assert _placeholders(message.string) == _placeholders(message.id), f"{locale}: {message.id!r}"


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalog_matches_its_source(locale):
    folder = CATALOGS / locale / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as po, (folder / "messages.mo").open("rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    assert _entries(source) == _entries(compiled), "run `make translations`"


def _entries(catalog) -> dict:
    def frozen(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    def key(message):
        context = message.context
        if isinstance(context, bytes):  # read_mo gives the context undecoded
            context = context.decode()
        return context, frozen(message.id)

    return {key(m): frozen(m.string) for m in catalog if m.id}
