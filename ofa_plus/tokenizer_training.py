"""Training the text model of the OFA+ tokenizer, and the offline corpus the shipped one was trained on.

:func:`train_tokenizer` trains a SentencePiece model on any texts and saves a ready
:class:`~ofa_plus.tokenization_ofa_plus.OFAPlusTokenizer` directory. :func:`default_corpus` crawls
real English text available wherever Python runs (standard-library docstrings, Unicode character
names, number words); ``ofa_plus/assets/tokenizer/`` holds a unigram model of 8000 pieces trained on
it. To rebuild that asset (run from the repository root; the result depends on the Python version
whose standard library is read)::

    python -m ofa_plus.tokenizer_training --output ofa_plus/assets/tokenizer --vocab-size 8000

To train on your own text instead (one sentence or paragraph per line)::

    python -m ofa_plus.tokenizer_training --output my_tok --corpus a.txt b.txt --vocab-size 32000

or from Python: ``train_tokenizer(texts, "my_tok", vocab_size=32000)``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import os
import re
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sentencepiece as spm

from .tokenization_ofa_plus import VOCAB_FILES_NAMES, OFAPlusTokenizer
from .vocabulary import reserved_tokens

__all__ = ["train_tokenizer", "default_corpus", "main"]


# ====================================================================== training
def train_tokenizer(
    texts: Iterable[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    **trainer_kwargs,
) -> OFAPlusTokenizer:
    """Train a SentencePiece model in memory on ``texts`` and save a ready tokenizer in ``output_dir``.

    Pieces: ``<unk>`` at SentencePiece id 0 (mapped to ``UNK_ID``), no bos/eos/pad pieces (the
    reserved range has them), byte fallback (so any text round-trips), digits split, identity
    normalisation and no whitespace folding (exact round trip). Single-threaded with a fixed seed:
    the same texts give the same model. ``trainer_kwargs`` override SentencePiece trainer options.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    def sentences() -> Iterator[str]:
        for t in texts:
            if t and not t.isspace():
                yield t

    options = dict(
        model_type=model_type,
        vocab_size=vocab_size,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        byte_fallback=True,
        split_digits=True,
        character_coverage=0.9999,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        hard_vocab_limit=False,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=16384,
        num_threads=1,
        minloglevel=2,
    )
    options.update(trainer_kwargs)
    spm.set_random_generator_seed(int(options.pop("seed", 0)) or 1)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=sentences(), model_writer=model, **options)
    (output_dir / VOCAB_FILES_NAMES["vocab_file"]).write_bytes(model.getvalue())

    tokenizer = OFAPlusTokenizer(vocab_file=str(output_dir / VOCAB_FILES_NAMES["vocab_file"]))
    reserved = set(reserved_tokens())
    clashes = [
        p for p in (tokenizer.sp_model.id_to_piece(k) for k in range(1, tokenizer.num_text_pieces)) if p in reserved
    ]
    if clashes:  # harmless for encoding (ids never go through strings), ambiguous for convert_tokens_to_ids
        warnings.warn(f"SentencePiece pieces spelled like reserved tokens: {clashes[:10]}")
    tokenizer.save_pretrained(str(output_dir))
    return OFAPlusTokenizer.from_pretrained(str(output_dir))


# ====================================================================== default corpus
# Modules never imported: side effects on import (browser, printing, GUI, terminal), platform-only,
# or huge and uninteresting (the test suite, codecs).
_SKIP_MODULES = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "tests",
    "lib2to3",
    "readline",
    "curses",
    "ensurepip",
    "venv",
    "msilib",
    "winreg",
    "winsound",
    "msvcrt",
    "nt",
    "encodings",
    "pydoc_data",
    "xxsubtype",
    "xxlimited",
    "site",
    "sitecustomize",
    "usercustomize",
    "__main__",
    "pip",
    "distutils",
}
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth hundredth thousandth"
).split()


def _number_words(n: int) -> str:
    if n < 20:
        return _NUMBER_WORDS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens - 2] + ("-" + _NUMBER_WORDS[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _NUMBER_WORDS[hundreds] + " hundred" + (" and " + _number_words(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    return _number_words(thousands) + " thousand" + ((" " + _number_words(rest)) if rest else "")


def _paragraphs(doc: str) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", doc):
        para = " ".join(line.strip() for line in para.splitlines() if line.strip())
        if len(para) >= 8:
            yield para


def _safe_import(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - ImportError, SystemExit, platform errors...
            return None


def _module_docs(module) -> Iterator[str]:
    """Docstrings of a module and of the classes/functions (and their methods) it defines."""
    modname = module.__name__
    doc = inspect.getdoc(module)
    if doc:
        yield doc
    try:
        members = sorted(vars(module).items())
    except TypeError:
        return
    for name, obj in members:
        if name.startswith("_") or getattr(obj, "__module__", None) != modname:
            continue
        if inspect.isclass(obj):
            if obj.__doc__:
                yield inspect.cleandoc(obj.__doc__)
            for mname, meth in sorted(vars(obj).items()):
                if mname.startswith("_"):
                    continue
                if isinstance(meth, (staticmethod, classmethod)):
                    meth = meth.__func__
                if (inspect.isroutine(meth) or isinstance(meth, property)) and isinstance(
                    getattr(meth, "__doc__", None), str
                ):
                    yield inspect.cleandoc(meth.__doc__)
        elif inspect.isroutine(obj) and isinstance(obj.__doc__, str):
            yield inspect.cleandoc(obj.__doc__)


def _stdlib_modules(max_depth: int = 3) -> Iterator[Any]:
    """Importable standard-library modules, sorted, each package followed by its submodules."""
    import pkgutil

    def walk(name: str, depth: int) -> Iterator[Any]:
        module = _safe_import(name)
        if module is None:
            return
        yield module
        path = getattr(module, "__path__", None)
        if not path or depth >= max_depth:
            return
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name.startswith("_") or info.name in _SKIP_MODULES or "test" in info.name:
                continue
            yield from walk(f"{name}.{info.name}", depth + 1)

    for top in sorted(sys.stdlib_module_names):
        if not top.startswith("_") and top not in _SKIP_MODULES:
            yield from walk(top, 1)


def _pydoc_topics() -> Iterator[str]:
    """The language reference pages that ``help('TOPIC')`` shows, shipped with CPython."""
    module = _safe_import("pydoc_data.topics")
    topics = getattr(module, "topics", None) or {}
    for key in sorted(topics):
        if isinstance(topics[key], str):
            yield topics[key]


def default_corpus() -> Iterator[str]:
    """Real English text available offline wherever Python runs, in a deterministic order.

    1. docstrings of the standard library (modules and their submodules, plus the classes, functions
       and methods they define), then the language-reference topics of ``pydoc_data``; one
       paragraph per item, whitespace folded, deduplicated;
    2. Unicode characters with their names, lower-cased (``"🐶 dog face"``): emoji, Latin and Greek
       letters -- object and colour words for captions;
    3. numbers 0..1000 (and some larger) as digits and as words, and ordinals.

    Importing the modules happens lazily as the iterator advances (``itertools.islice`` it for a sample).
    """
    seen: set[str] = set()
    for module in _stdlib_modules():
        with warnings.catch_warnings():  # deprecated aliases (typing.re...) warn on attribute access
            warnings.simplefilter("ignore")
            docs = list(_module_docs(module))
        for doc in docs:
            for para in _paragraphs(doc):
                if para not in seen:
                    seen.add(para)
                    yield para
    for doc in _pydoc_topics():
        for para in _paragraphs(doc):
            if para not in seen:
                seen.add(para)
                yield para
    ranges = [(0x00C0, 0x0180), (0x0391, 0x03CA), (0x2600, 0x27C0), (0x1F300, 0x1FB00)]
    for lo, hi in ranges:
        for cp in range(lo, hi):
            ch = chr(cp)
            name = unicodedata.name(ch, "")
            if name:
                yield f"{ch} {name.lower()}"
    for n in list(range(1001)) + [1024, 1500, 1900, 1999, 2000, 2024, 10000, 100000, 1000000]:
        yield f"{n} {_number_words(n)}"
    yield " ".join(_ORDINALS)
    yield " ".join(str(d) for d in range(10))


# ====================================================================== CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ofa_plus.tokenizer_training",
        description="Train the SentencePiece text model of the unified OFA+ tokenizer and save a tokenizer "
        "directory (spiece.model + tokenizer_config.json) loadable with OFAPlusTokenizer.from_pretrained.",
    )
    parser.add_argument("--output", required=True, help="directory to write the tokenizer to")
    parser.add_argument(
        "--corpus",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="UTF-8 text files, one sentence/paragraph per line (default: the built-in default_corpus())",
    )
    parser.add_argument("--vocab-size", type=int, default=8000, help="SentencePiece pieces (default 8000)")
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"], help="default unigram")
    args = parser.parse_args(argv)

    if args.corpus:

        def texts() -> Iterator[str]:
            for path in args.corpus:
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        line = line.rstrip("\n")
                        if line.strip():
                            yield line

        corpus = texts()
    else:
        corpus = default_corpus()
    tok = train_tokenizer(corpus, args.output, vocab_size=args.vocab_size, model_type=args.model_type)
    print(f"saved {type(tok).__name__} with {tok.num_text_pieces} text pieces (len {len(tok)}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
