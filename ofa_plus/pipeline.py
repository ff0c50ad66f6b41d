"""``pipeline("multimodal-instruction")``: run an instruction, or one of the model's tasks by name.

    import ofa_plus                                   # registers the task (alias "ofa-plus")
    from transformers import pipeline

    pipe = pipeline("multimodal-instruction", model="runs/default/final")
    pipe("[IMAGE:image] what does the image describe? -> [TEXT:caption]", image=img)   # -> "a red circle"
    pipe(task="mnist", image=[img1, img2], batch_size=2)                               # -> ["seven", "one"]
    pipe([{"image": img1}, {"image": img2}], task="mnist", num_beams=3)               # rows as dicts

Column values are keyword arguments named after the instruction's slots (one value, or a list per
column for a batch); every other keyword argument is a ``generate()`` setting. A task by name uses
its card: the instruction, closed set, beams and length it was trained and evaluated with. The
output is the decoded value (text, a box in pixels, a dict for several targets), one per row; an
AUDIO target (text-to-speech) gives ``{"audio": float32 array, "sampling_rate": int}``, and with
``output_dir=`` each is also written there as a 16-bit WAV, ``0000.wav``, ``0001.wav``, ... in row
order (the dict then holds its ``"path"``):

    pipe("[TEXT:text] -> [AUDIO:audio]", text=["Hello.", "Good morning."], output_dir="speech")

Audio given as bare arrays needs ``sampling_rate=``. In a batch, a row whose value cannot be read
(a corrupt image) gives None, a warning names it, and ``pipe.skipped_rows`` lists it (task, row,
slot, reason); a single input that cannot be read is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging

from .multitask import encode_rows
from .outputs.speech import save_audio
from .plan import TaskPlan, compile_plan
from .processing_ofa_plus import OFAPlusBatch
from .task_card import TaskCard, generation_kwargs, get_task, inference_row, tasks_from_dicts
from .threads import inference_threads, resolve_threads

logger = logging.get_logger(__name__)

TASK = "multimodal-instruction"
ALIAS = "ofa-plus"
_GENERATION_KEYS = {k for k in vars(GenerationConfig()) if not k.startswith("_")} | {
    "generation_config",
    "logits_processor",
    "stopping_criteria",
}


class OFAPlusPipeline(Pipeline):
    """Instruction (or task name) + columns -> decoded values, through the processor and ``generate()``."""

    _load_processor = True
    _load_tokenizer = _load_image_processor = _load_feature_extractor = _load_video_processor = False
    _pipeline_calls_generate = True

    def __init__(self, *args, num_threads: int | str | None = None, **kwargs):
        # chosen once: the load average that "auto" reads would count this pipeline's own calls later
        self.num_threads = resolve_threads(num_threads)
        super().__init__(*args, **kwargs)

    @property
    def tasks(self) -> dict[str, TaskCard]:
        """The model's task cards by name (the processor's when the model carries none)."""
        return tasks_from_dicts(getattr(self.model.config, "task_cards", None) or self.processor.task_cards)

    def __call__(
        self,
        inputs: str | dict | list[dict] | TaskPlan | None = None,
        *,
        task: str | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        output_dir: str | None = None,
        sampling_rate: int | None = None,
        num_threads: int | str | None = None,
        **kwargs,
    ) -> Any:
        with inference_threads(self.num_threads if num_threads is None else num_threads):
            return self._call(inputs, task, batch_size, num_workers, output_dir, sampling_rate, kwargs)

    def _call(self, inputs, task, batch_size, num_workers, output_dir, sampling_rate, kwargs) -> Any:
        plan = self._plan(inputs, task)
        if output_dir is not None and plan.output_kind != "speech":
            raise ValueError(
                f"output_dir= writes AUDIO outputs as WAV files; this task generates {plan.generator.kind}"
            )
        columns = {k: kwargs.pop(k) for k in list(kwargs) if k in plan.columns()}
        unknown = sorted(set(kwargs) - _GENERATION_KEYS - {"closed_set"})
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))}: neither a column of the instruction "
                f"({', '.join(plan.columns())}) nor a generate() setting"
            )
        if isinstance(inputs, (dict, list)):
            if columns:
                raise ValueError("give the columns either as rows (dicts) or as keyword arguments, not both")
            rows, batched = (inputs, True) if isinstance(inputs, list) else ([inputs], False)
        else:
            rows, batched = self.processor.split_rows(plan, columns)
        rows = [inference_row(plan, row) for row in rows]
        size = batch_size or self._batch_size or 1
        chunks = [
            {
                "plan": plan,
                "rows": rows[i : i + size],
                "first": i,
                "sampling_rate": sampling_rate,
                "single": not batched,
            }
            for i in range(0, len(rows), size)
        ]
        # each item of the base pipeline is one batch of rows (one generate() call)
        outputs = super().__call__(chunks, num_workers=num_workers, batch_size=1, **kwargs)
        values = [value for chunk in outputs for value in chunk["values"]]
        self.skipped_rows = [row for chunk in outputs for row in chunk["skipped"]]
        if self.skipped_rows:
            logger.warning(
                "%d of %d row(s) could not be read and give None: %s",
                len(self.skipped_rows),
                len(values),
                "; ".join(f"row {s['index']}, slot {s['slot']}: {s['reason']}" for s in self.skipped_rows),
            )
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            for index, value in enumerate(values):
                if value is not None:
                    value["path"] = save_audio(value, Path(output_dir) / f"{index:04d}.wav")
        return values if batched else values[0]

    def _plan(self, inputs, task: str | None) -> TaskPlan:
        if task is not None:
            if isinstance(inputs, (str, TaskPlan)):
                raise ValueError("give either an instruction or task=, not both")
            return get_task(self.tasks, task).plan
        if isinstance(inputs, TaskPlan):
            return inputs
        if isinstance(inputs, str):
            return compile_plan(inputs)
        known = ", ".join(sorted(self.tasks)) or "none"
        raise ValueError(
            "give an instruction, e.g. pipe('[IMAGE:image] what does the image describe? -> "
            f"[TEXT:caption]', image=img), or a task of the model by name: task=... (known: {known})"
        )

    def _sanitize_parameters(self, closed_set=None, **generate_kwargs):
        preprocess = {} if closed_set is None else {"closed_set": closed_set}
        forward = {"generate_kwargs": generate_kwargs} if generate_kwargs else {}
        return preprocess, forward, {}

    def preprocess(self, chunk: dict, closed_set: list[str] | None = None) -> dict:
        plan, rows, first = chunk["plan"], chunk["rows"], chunk["first"]
        options = {"closed_set": closed_set, "sampling_rate": chunk["sampling_rate"]}
        if chunk["single"]:  # one input: its error is the answer
            batch, skipped = self.processor.process_rows(plan, rows, **options), []
        else:  # a batch: unreadable rows give None, the others their values
            batch, skipped = encode_rows(self.processor, plan, rows, range(first, first + len(rows)), **options)
        skipped = [vars(s) for s in skipped]
        if batch is None:
            return {"plan": plan, "rows": [], "skipped": skipped, "first": first, "count": len(rows)}
        return {**batch, "plan": plan, "rows": batch.rows, "skipped": skipped, "first": first, "count": len(rows)}

    def _forward(self, model_inputs: dict, generate_kwargs: dict | None = None) -> dict:
        rows, plan = model_inputs.pop("rows"), model_inputs.pop("plan")
        layout = {k: model_inputs.pop(k) for k in ("skipped", "first", "count")}
        if not rows:  # every row of this batch was unreadable
            return {"generated": None, "plan": plan, "rows": rows, **layout}
        model_inputs = {
            k: v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in model_inputs.items()
        }
        settings = {**generation_kwargs(plan), **self._prepare_generate_kwargs(generate_kwargs or {})}
        generated = self.model.generate(**model_inputs, **settings)
        return {"generated": generated, "plan": plan, "rows": rows, **layout}

    def postprocess(self, outputs: dict) -> dict:
        """The batch's values in row order (None for an unreadable row) and its unreadable rows."""
        batch = OFAPlusBatch()
        batch.plan, batch.rows = outputs["plan"], outputs["rows"]
        decoded = iter(self.processor.postprocess(outputs["generated"], batch) if batch.rows else [])
        bad = {s["index"] for s in outputs["skipped"]}
        first = outputs["first"]
        values = [None if first + i in bad else next(decoded) for i in range(outputs["count"])]
        return {"values": values, "skipped": outputs["skipped"]}


def register() -> None:
    """Make ``pipeline("multimodal-instruction")`` (and its alias ``"ofa-plus"``) build an `OFAPlusPipeline`."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=OFAPlusPipeline, pt_model=AutoModelForSeq2SeqLM, type="multimodal"
    )
    PIPELINE_REGISTRY.task_aliases[ALIAS] = TASK
