"""summarization: Python standard-library docstrings, summary paragraph against the rest."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import warnings

import datasets

from .common import STRING, STRINGS, Build, TaskData, shuffled, token_length

# modules that import quickly and quietly (no GUI, no output, no network on import)
DOC_MODULES = """
abc argparse array ast asyncio base64 binascii bisect bz2 calendar cmath codecs codeop collections
collections.abc colorsys compileall concurrent.futures configparser contextlib copy cProfile csv
dataclasses datetime decimal difflib dis doctest email email.message email.utils enum filecmp
fileinput fnmatch fractions ftplib functools getopt gettext glob graphlib gzip hashlib heapq hmac
html html.parser http.client http.cookies http.server imaplib importlib importlib.metadata inspect io
ipaddress itertools json locale logging logging.handlers lzma mailbox math multiprocessing netrc
numbers operator optparse os os.path pathlib pdb pickle pickletools platform plistlib poplib pprint
pstats py_compile queue quopri random re reprlib sched secrets selectors shelve shlex shutil site
smtplib socket sqlite3 statistics string struct subprocess symtable sysconfig tabnanny tarfile
tempfile textwrap threading timeit tokenize tomllib trace traceback types typing unittest
unittest.mock urllib.parse urllib.request uuid warnings wave weakref wsgiref.simple_server
xml.dom.minidom xml.etree.ElementTree xmlrpc.client zipapp zipfile zoneinfo
""".split()


def split_docstring(doc: str) -> tuple[str, str]:
    """(summary, body): the first paragraph (a wrapped summary sentence is joined) and the rest,
    both with whitespace normalised."""
    parts = re.split(r"\n\s*\n", inspect.cleandoc(doc), maxsplit=1)
    body = parts[1] if len(parts) > 1 else ""
    return " ".join(parts[0].split()), " ".join(body.split())


def truncate_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def documented_objects(module_name: str):
    """The module and the public classes, functions and methods it (or its package) defines."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # optional modules (e.g. lzma built without liblzma): skip
        return
    yield module_name, module
    for attribute, value in sorted(vars(module).items()):
        if attribute.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not str(getattr(value, "__module__", "")).startswith(module.__name__):
            continue  # imported from elsewhere: documented where it is defined
        yield f"{module_name}.{attribute}", value
        if inspect.isclass(value):
            for method, function in sorted(vars(value).items()):
                if not method.startswith("_") and inspect.isfunction(function):
                    yield f"{module_name}.{attribute}.{method}", function


def build_summarization(b: Build) -> TaskData:
    rng = b.rng("summarization")
    rows, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few deprecated aliases warn when touched
        for module_name in sorted(set(DOC_MODULES)):
            for qualname, value in documented_objects(module_name):
                doc = value.__doc__
                if not isinstance(doc, str):
                    continue
                summary, body = split_docstring(doc)
                # keep real prose: a one-sentence-ish summary, a body worth summarising, no
                # signature lines ("f(a, b) -> c") in place of a summary
                if not 10 <= len(summary) <= 160 or len(body) <= 150 or re.match(r"^[\w.]+\(.*\)", summary):
                    continue
                if token_length(summary) > 32:  # the card's target max_length
                    continue
                if summary.lower() in seen:
                    continue
                seen.add(summary.lower())
                rows.append(
                    {
                        "document": truncate_words(body, 400),
                        "summary": summary,
                        "references": [summary],
                        "source": qualname,
                    }
                )
    rows = shuffled(rng, rows)
    test, validation, train = rows[:150], rows[150:250], rows[250:]
    splits = {
        split: part[: b.size(len(part))]
        for split, part in (("train", train), ("validation", validation), ("test", test))
    }
    return TaskData(
        splits,
        datasets.Features({"document": STRING, "summary": STRING, "references": STRINGS, "source": STRING}),
        f"Python {sys.version_info.major}.{sys.version_info.minor} standard-library docstrings",
        "Summarization of real technical prose: docstrings of the Python standard library (PSF "
        f"licence), Python {sys.version_info.major}.{sys.version_info.minor}, from a fixed list of "
        f"{len(set(DOC_MODULES))} modules, their public classes, functions and methods. Summary: the first "
        "paragraph of the docstring; document: the rest, whitespace-normalised and cut to about 400 "
        "characters; only docstrings whose body is over 150 characters, deduplicated by summary. "
        "`source` names the documented object. Split: a seeded shuffle, 150 test / 100 validation / "
        "the rest train.",
    )
