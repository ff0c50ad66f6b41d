"""Model card metadata: evaluation results as the Hub's `model-index`.

The evaluator produces one entry per (task, metric):

    {"task": "vqa", "task_type": "visual-question-answering", "dataset_name": "easy-vqa (default suite)",
     "dataset_type": "local/vqa", "split": "test", "metric": "vqa_accuracy", "value": 71.3, "baseline": 30.1}

(`task_type` may be left out: `TASK_TYPES` then supplies it from the task name; `baseline`,
`baseline_name` (or `baseline_kind`) and `dataset_config` are optional.) These become
`huggingface_hub.EvalResult`s and, through `ModelCardData`, the `model-index` YAML, so
huggingface_hub's own classes build and validate it.
The trivial baseline has no slot of its own in the model-index; it goes into the metric's display
name ("VQA accuracy (trivial baseline: 30.10, most frequent answer)").
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCardData

__all__ = ["METRIC_TYPES", "TASK_TYPES", "card_data", "eval_results", "model_card_metadata_yaml", "model_index"]

# Our metric name -> (model-index metric type, display name). Types follow the Hub's metric ids
# where one exists (accuracy, exact_match, bleu, rouge, cider, wer); the rest are descriptive.
METRIC_TYPES: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "Accuracy"),
    "exact_match": ("exact_match", "Exact match"),
    "vqa_accuracy": ("vqa_accuracy", "VQA accuracy"),
    "cider": ("cider", "CIDEr"),
    "bleu4": ("bleu", "BLEU-4"),
    "rouge_l": ("rouge", "ROUGE-L"),
    "iou_acc": ("acc@0.5", "Acc@0.5 (IoU >= 0.5)"),
    "sql_execution_match": ("execution_accuracy", "Execution match"),
    "sudoku_solved": ("accuracy", "Solved puzzles"),
    "wer": ("wer", "WER"),
    "cer": ("cer", "CER"),
    "mcd": ("mcd", "MCD (dB)"),
}

# Our task names / target kinds -> Hub task types (pipeline tags).
TASK_TYPES: dict[str, str] = {
    "image_classification": "image-classification",
    "caption": "image-to-text",
    "captioning": "image-to-text",
    "image_captioning": "image-to-text",
    "vqa": "visual-question-answering",
    "grounding": "object-detection",
    "visual_grounding": "object-detection",
    "grounded_captioning": "image-to-text",
    "detection": "object-detection",
    "object_detection": "object-detection",
    "visual_entailment": "visual-question-answering",
    "text_classification": "text-classification",
    "summarization": "summarization",
    "text_to_sql": "text2text-generation",
    "table_qa": "table-question-answering",
    "table_to_text": "text2text-generation",
    "sudoku": "text2text-generation",
    "asr": "automatic-speech-recognition",
    "tts": "text-to-speech",
    "video_captioning": "video-text-to-text",
    "video_classification": "video-classification",
    "image_generation": "text-to-image",
    "text_to_motion": "other",
}

_REQUIRED = ("task", "dataset_name", "dataset_type", "metric", "value")


def _eval_result(entry: dict[str, Any]) -> EvalResult:
    missing = [key for key in _REQUIRED if entry.get(key) is None]
    if missing:
        raise ValueError(f"eval result {entry!r} lacks {', '.join(missing)}")
    metric = entry["metric"]
    metric_type, display = METRIC_TYPES.get(metric, (metric, metric))
    if entry.get("baseline") is not None:
        kind = entry.get("baseline_name") or entry.get("baseline_kind")  # either key, as the evaluator writes it
        how = f", {kind}" if kind else ""
        display = f"{display} (trivial baseline: {float(entry['baseline']):.2f}{how})"
    return EvalResult(
        task_type=entry.get("task_type") or TASK_TYPES.get(entry["task"], "other"),
        task_name=entry["task"],
        dataset_type=entry["dataset_type"],
        dataset_name=entry["dataset_name"],
        dataset_config=entry.get("dataset_config"),
        dataset_split=entry.get("split"),
        metric_type=metric_type,
        metric_name=display,
        # float(): numpy scalars would not dump as plain YAML numbers; two decimals of a percentage
        metric_value=round(float(entry["value"]), 2),
    )


def eval_results(results: list[dict[str, Any]], model_name: str) -> list[EvalResult]:
    """The evaluator's result entries as `EvalResult`s, grouped the way the model-index stores them.

    The model-index keeps one task and dataset per (task type, dataset type, config, split) group,
    so results are ordered by group (first appearance) and two entries of one group must agree on
    the task and dataset name; this makes `model_index_to_eval_results` give back exactly this list.
    `model_name` is not stored in an `EvalResult`; it is taken for symmetry with `model_index`.
    """
    groups: dict[tuple, list[EvalResult]] = {}
    for entry in results:
        result = _eval_result(entry)
        group = groups.setdefault(result.unique_identifier, [])
        if group and (group[0].task_name, group[0].dataset_name) != (result.task_name, result.dataset_name):
            raise ValueError(
                f"results for task {group[0].task_name!r} and {result.task_name!r} share task type, dataset "
                f"type and split {result.unique_identifier!r}; give them distinct dataset_type values"
            )
        group.append(result)
    return [result for group in groups.values() for result in group]


def card_data(results: list[dict[str, Any]], model_name: str, **fields: Any) -> ModelCardData:
    """`ModelCardData` holding the eval results (``model-index``) plus other fields (library_name, tags, ...)."""
    if not model_name:
        raise ValueError("model_name is required for a model-index")
    return ModelCardData(model_name=model_name, eval_results=eval_results(results, model_name) or None, **fields)


def model_index(results: list[dict[str, Any]], model_name: str) -> list[dict[str, Any]]:
    """The `model-index` metadata structure (a list with one model entry)."""
    if not results:
        raise ValueError("a model-index needs at least one result")
    return card_data(results, model_name).to_dict()["model-index"]


def model_card_metadata_yaml(results: list[dict[str, Any]], model_name: str, **fields: Any) -> str:
    """YAML metadata (without the "---" fences) holding the model-index.

    Extra keyword arguments are other `ModelCardData` fields (library_name, license, pipeline_tag, ...).
    """
    return card_data(results, model_name, **fields).to_yaml()
