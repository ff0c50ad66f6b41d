"""Library noise off while an ``ofa-plus`` command runs (train, evaluate, finetune, run, push).

Off: transformers' own progress bars ("Loading weights", "Writing model shards"), datasets' progress
bars and warnings ("Creating parquet from Arrow format", "Setting num_proc from 1 back to 1 ..."),
accelerate's "Removed shared tensor" message at every checkpoint (the model ties its embeddings to
its output layer on purpose) and the transformers deprecation warning that peft triggers in
``get_peft_model``. Kept: the commands' own bars and reports, the Hub's download and upload bars,
and every other warning and error.

Each library's own switch is used and put back on the way out, so importing ofa_plus or calling
it from Python changes nothing. The libraries' environment variables win: with
``HF_HUB_DISABLE_PROGRESS_BARS``, ``HF_DATASETS_DISABLE_PROGRESS_BARS`` or ``DATASETS_VERBOSITY``
set, that library is left as the variable says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

# messages dropped by logger name: (logger, text the message contains)
_DROPPED_MESSAGES = [("accelerate.utils.other", "Removed shared tensor")]
# Python warnings ignored: (category, regular expression the message starts with)
_IGNORED_WARNINGS = [(FutureWarning, r"`is_gradient_checkpointing` is deprecated")]


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _silent_bar(previous):
    """A transformers tqdm hook that makes every bar it creates a disabled one."""

    def hook(factory, args, kwargs):
        kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous else factory(*args, **kwargs)

    return hook


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within the block, the libraries print only what helps the user (see the module docstring)."""
    import datasets  # noqa: PLC0415 (heavy; only the commands need it)
    from datasets.utils import are_progress_bars_disabled  # noqa: PLC0415
    from transformers.utils import logging as transformers_logging  # noqa: PLC0415

    with contextlib.ExitStack() as undo:
        if "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ:
            previous = transformers_logging.set_tqdm_hook(None)
            transformers_logging.set_tqdm_hook(_silent_bar(previous))
            undo.callback(transformers_logging.set_tqdm_hook, previous)
        if "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ and not are_progress_bars_disabled():
            datasets.disable_progress_bars()
            undo.callback(datasets.enable_progress_bars)
        if "DATASETS_VERBOSITY" not in os.environ:
            undo.callback(datasets.logging.set_verbosity, datasets.logging.get_verbosity())
            datasets.logging.set_verbosity_error()
        for name, text in _DROPPED_MESSAGES:
            logger, dropped = logging.getLogger(name), _DropMessage(text)
            logger.addFilter(dropped)
            undo.callback(logger.removeFilter, dropped)
        undo.enter_context(warnings.catch_warnings())
        for category, message in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
