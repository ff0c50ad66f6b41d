"""config.target_vocab="modality": each target's softmax ranges over the ids its modalities can produce."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError

from conftest import small_config, small_model
from ofa_plus import OFAPlusConfig, OFAPlusProcessor
from ofa_plus import vocabulary as V

VQA = "[IMAGE:image] [TEXT:question] -> [TEXT:answer]"
GROUNDING = "[IMAGE:image] which region does the text describe? [TEXT:text] -> [BOX:box]"


def test_tiny_preset_restricts_and_saved_models_keep_the_full_vocabulary():
    assert OFAPlusConfig.from_preset("tiny").target_vocab == "modality"
    assert OFAPlusConfig().target_vocab == "full"  # what a config.json without the field loads as
    with pytest.raises(StrictDataclassClassValidationError, match="target_vocab"):
        OFAPlusConfig(target_vocab="text")


def test_label_vocab_holds_what_each_target_modality_can_produce(processor, images):
    text = processor(VQA, image=images[:2], question=["what?", "digit?"], answer=["red", "three"])
    vocab = set(text["label_vocab"].tolist())
    assert V.EOS_ID in vocab and V.UNK_ID in vocab
    assert set(range(V.TEXT_OFFSET, len(processor.tokenizer))) <= vocab
    assert not vocab & set(range(V.BIN_OFFSET, V.TEXT_OFFSET))  # no bins, codes or phones
    assert set(text["labels"][text["labels"] != -100].tolist()) <= vocab

    box = processor(GROUNDING, image=images[:2], text=["the shape", "a digit"], box=[(1, 2, 30, 40), (0, 0, 10, 10)])
    bins = range(V.BIN_OFFSET, V.BIN_OFFSET + processor.num_bins)
    assert box["label_vocab"].tolist() == [V.EOS_ID, *bins]

    closed = processor(
        "[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set=yes|no|maybe not]",
        image=images[:1],
        question=["is it red?"],
        answer=["maybe not"],
    )
    sequences = closed["constraints"].sequences
    assert closed["label_vocab"].tolist() == sorted({t for s in sequences for t in s})

    full = OFAPlusProcessor.for_config(small_config(target_vocab="full"))
    assert "label_vocab" not in full(VQA, image=images[:1], question=["what?"], answer=["red"])


def test_a_label_outside_the_closed_set_is_an_error_naming_the_row(processor, images):
    with pytest.raises(ValueError, match="row 1: label id"):
        processor(
            "[TEXT:question] -> [TEXT:answer,closed_set=yes|no]", question=["a?", "b?"], answer=["yes", "perhaps"]
        )


def test_restricted_loss_is_cross_entropy_over_the_label_vocab_columns(processor, images):
    """Value and gradients equal F.cross_entropy (label smoothing over the restricted ids) on the full
    head's logits at the label_vocab columns."""
    inputs = processor(VQA, image=images[:3], question=["what?", "which colour?", "digit?"], answer=["red", "a", "3"])
    vocab, labels = inputs["label_vocab"], inputs["labels"]
    model = small_model(seed=3, dropout=0.0).train()
    keys = ("input_ids", "attention_mask", "pixel_values", "decoder_input_ids")
    out = model(**{k: inputs[k] for k in keys}, labels=labels, label_vocab=vocab)
    assert out.logits.shape[-1] == len(vocab)
    out.loss.backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    full = model(**{k: inputs[k] for k in keys}, use_cache=False)
    restricted = full.logits[..., vocab]
    local = torch.where(labels == -100, labels, torch.searchsorted(vocab, labels))
    plain = F.cross_entropy(restricted.flatten(0, 1), local.flatten(), ignore_index=-100, label_smoothing=0.1)
    plain.backward()
    torch.testing.assert_close(out.loss, plain)
    torch.testing.assert_close(out.logits, restricted)
    for name, grad in fast.items():
        scale = model.get_parameter(name).grad.abs().max().clamp(min=1e-3)
        torch.testing.assert_close(grad / scale, model.get_parameter(name).grad / scale, rtol=1e-4, atol=1e-5)
    assert fast["model.shared.weight"][V.BIN_OFFSET : V.TEXT_OFFSET].abs().sum() == 0  # no softmax there
    with pytest.raises(ValueError, match="needs labels"):
        model(**{k: inputs[k] for k in keys}, label_vocab=vocab)


def test_free_generation_stays_in_the_target_vocabulary(images):
    """Sampling from an untrained model picks bins, codes, phones and specials too; restricted, it cannot."""
    model = small_model(seed=1)
    generated = {}
    for target_vocab in ("full", "modality"):
        processor = OFAPlusProcessor.for_config(small_config(target_vocab=target_vocab))
        inputs = processor("[IMAGE:image] what does the image describe? -> [TEXT:caption]", image=images)
        torch.manual_seed(0)
        ids = model.generate(**inputs, do_sample=True, top_k=0, max_new_tokens=12)
        generated[target_vocab] = set(ids[:, 1:].flatten().tolist()) - {V.PAD_ID}
    allowed = {V.EOS_ID, V.UNK_ID, *range(V.TEXT_OFFSET, len(processor.tokenizer))}
    assert generated["full"] - allowed
    assert generated["modality"] <= allowed
