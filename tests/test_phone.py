"""PHONE: espeak-ng G2P into the reserved phone range, PHONE slots, and the phone CTC loss of ASR."""

from __future__ import annotations

import subprocess
import time

import pytest
import torch
import torch.nn.functional as F

import ofa_plus.vocabulary as V
from conftest import small_config
from ofa_plus import InstructionError, OFAPlusForConditionalGeneration, OFAPlusProcessor, compile_plan
from ofa_plus.modalities import phone
from ofa_plus.modalities.base import SlotContext
from ofa_plus.modalities.phone import (
    CTC_BLANK,
    CTC_BLANK_ID,
    PhoneModality,
    ctc_phone_ids,
    phone_ids,
    phonemize,
    phones_to_string,
    split_ipa,
    text_to_phones,
)

ASR_CTC = "[AUDIO:audio] what is the text of the speech? -> [TEXT:text,preprocess=text_phone]"
SENTENCES = ["the cat sat on the mat", "open the door please", "seven green apples", "she sells sea shells"]


def espeak_ipa(text: str, voice: str = "en-us", *flags: str) -> str:
    out = subprocess.run(
        ["espeak-ng", "-q", "-x", "--ipa", *flags, "-v", voice, text], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(out.split())


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    paths = []
    for i, text in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(folder / f"{i}.wav"), text], check=True)
        paths.append(str(folder / f"{i}.wav"))
    return paths


# ------------------------------------------------------------------------------------ G2P
def test_g2p_of_real_sentences():
    symbols = text_to_phones("The quick brown fox jumps over the lazy dog.")
    assert symbols[:9] == ["ð", "ə", "|", "k", "w", "ˈ", "ɪ", "k", "|"]
    assert symbols.count("|") == 8  # nine words
    assert all(s in V.PHONES for s in symbols)
    # ids -> string gives back exactly what espeak-ng printed
    assert phones_to_string(phone_ids(symbols)) == espeak_ipa("The quick brown fox jumps over the lazy dog.")
    # a British voice reads "fox" with another vowel
    assert "ɒ" in text_to_phones("fox", voice="en-gb") and "ɑ" in text_to_phones("fox")
    # clauses (commas, sentences) are joined; numbers and symbols are read out
    assert phones_to_string(phone_ids(text_to_phones("Hello, world. I paid $5!"))) == espeak_ipa(
        "Hello, world. I paid $5!"
    )
    # stress and length are symbols of their own; the syllabic mark of "button" is kept
    assert text_to_phones("see") == ["s", "ˈ", "i", "ː"]
    assert "\u0329" in text_to_phones("button")


def test_batched_g2p_equals_one_by_one():
    texts = ["Dr. Smith paid 3.5 dollars, then left!", "rhythm and blues", "", "a", "Is it raining? No."]
    phone._CACHE.clear()
    batched = phonemize(texts)
    for text, ipa in zip(texts, batched):
        assert ipa == (espeak_ipa(text) if text else "")
    # cached: a second call starts no espeak-ng process
    started = time.perf_counter()
    assert phonemize(texts) == batched
    assert time.perf_counter() - started < 0.01


def test_tie_bars_are_removed_and_unknown_symbols_are_errors():
    assert split_ipa("t͡ʃˈɛɹ") == ["t", "ʃ", "ˈ", "ɛ", "ɹ"]
    # espeak-ng's --ipa=3 ties affricates and diphthongs with a zero-width joiner: same symbols as plain --ipa
    tied = espeak_ipa("jumps over the brown chair", "en-us", "--ipa=3")
    assert "\u200d" in tied
    assert split_ipa(tied) == text_to_phones("jumps over the brown chair")
    with pytest.raises(ValueError) as info:
        split_ipa("həlˈoʊ☃", where="row 2, slot [PHONE:p]")
    assert "'☃'" in str(info.value) and "U+2603" in str(info.value) and "row 2, slot [PHONE:p]" in str(info.value)
    # a voice whose phones are outside the inventory (Vietnamese tone numbers): error names symbol and text
    with pytest.raises(ValueError) as info:
        text_to_phones("xin chào", where="row 0, slot [PHONE:p]", voice="vi")
    message = str(info.value)
    assert "'1'" in message and "xin chào" in message and "row 0, slot [PHONE:p]" in message
    with pytest.raises(ValueError, match="empty"):
        text_to_phones("   ", where="x")


# ------------------------------------------------------------------------------------ PHONE slots
def test_phone_input_slot_in_the_processor():
    processor = OFAPlusProcessor.for_config(small_config())
    instruction = "[PHONE:words] -> [TEXT:out]"
    batch = processor(instruction, words=["seven green apples", "open the door"], out=["a", "b"])
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == V.BOS_ID and ids[len(phone_ids(text_to_phones("seven green apples"))) + 1] == V.EOS_ID
    assert ids[1:-1] == phone_ids(text_to_phones("seven green apples"))
    # a list of symbols and an IPA string (phonemized) give the same ids
    symbols = text_to_phones("open the door")
    assert (
        processor(instruction, words=symbols, out="b")["input_ids"][0].tolist()
        == batch["input_ids"][1, : len(symbols) + 2].tolist()
    )
    ipa = espeak_ipa("open the door")
    as_ipa = processor("[PHONE:words,phonemized] -> [TEXT:out]", words=ipa, out="b")["input_ids"][0]
    assert as_ipa.tolist() == batch["input_ids"][1, : len(symbols) + 2].tolist()
    with pytest.raises(ValueError, match=r"row 1, slot \[PHONE:words\].*not in the phone inventory"):
        processor("[PHONE:words,phonemized] -> [TEXT:out]", words=["həloʊ", "wɜːld!"], out=["a", "b"])
    with pytest.raises(ValueError, match=r"row 0, slot \[PHONE:words\].*'Q'"):
        processor(instruction, words=[["h", "Q"]], out=["a"])


def test_phone_decode_and_target():
    ctx = SlotContext(None, {}, "out")
    ids = phone_ids(text_to_phones("hello world"))
    assert PhoneModality.decode(ids + [V.EOS_ID], ctx) == espeak_ipa("hello world")
    processor = OFAPlusProcessor.for_config(small_config())
    batch = processor("[TEXT:text] -> [PHONE:phones]", text="hello world", phones="hello world")
    assert batch["labels"][0].tolist() == ids + [V.EOS_ID]
    generated = torch.cat([torch.full((1, 1), V.BOS_ID), batch["labels"]], dim=1)  # as generate() returns it
    assert processor.postprocess(generated, batch) == [espeak_ipa("hello world")]


def test_preprocess_names_are_validated():
    compile_plan(ASR_CTC)
    with pytest.raises(InstructionError, match="unknown preprocess recipe 'text_fone' for TEXT"):
        compile_plan("[AUDIO:audio] -> [TEXT:text,preprocess=text_fone]")
    with pytest.raises(InstructionError, match="unknown preprocess recipe 'text_phone' for AUDIO"):
        compile_plan("[AUDIO:audio,preprocess=text_phone] -> [TEXT:text]")
    with pytest.raises(InstructionError, match="needs a target slot and an AUDIO slot"):
        compile_plan("[TEXT:question] -> [TEXT:text,preprocess=text_phone]")


# ------------------------------------------------------------------------------------ CTC
def test_processor_emits_ctc_labels(speech):
    processor = OFAPlusProcessor.for_config(small_config())
    batch = processor(ASR_CTC, audio=speech[:2], text=SENTENCES[:2])
    labels = batch["ctc_labels"]
    for i in range(2):
        expected = ctc_phone_ids(SENTENCES[i], "t")
        assert labels[i, : len(expected)].tolist() == expected
        assert bool((labels[i, len(expected) :] == -100).all())
        # stress marks and word boundaries are not sounds: not CTC targets
        skipped = {V.PHONE_OFFSET + V.PHONES.index(s) for s in ("ˈ", "ˌ", "|")}
        assert not skipped & set(expected)
    assert "ctc_labels" not in processor(ASR_CTC, audio=speech[:2])  # inference: no targets


def test_ctc_loss_matches_a_plain_computation(speech):
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config(dropout=0.0, ctc_weight=0.5)).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    batch = processor(ASR_CTC, audio=speech[:3], text=SENTENCES[:3])
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    out = model(**inputs)
    without = model(**{k: v for k, v in inputs.items() if k != "ctc_labels"})
    assert out.ctc_loss is not None and torch.isfinite(out.ctc_loss) and without.ctc_loss is None
    torch.testing.assert_close(out.loss, without.loss + 0.5 * out.ctc_loss)
    # by hand, row by row: states at the <audio> positions, logits against the phone rows
    phones = model.model.shared.weight[V.PHONE_OFFSET : V.PHONE_OFFSET + V.NUM_PHONE_SLOTS]
    assert CTC_BLANK_ID == V.PHONE_OFFSET + CTC_BLANK and CTC_BLANK >= len(V.PHONES)
    per_row = []
    for i in range(3):
        states = out.encoder_last_hidden_state[i][inputs["input_ids"][i] == V.AUDIO_ID]
        target = inputs["ctc_labels"][i][inputs["ctc_labels"][i] != -100] - V.PHONE_OFFSET
        log_probs = (states @ phones.T).log_softmax(-1)
        loss = F.ctc_loss(
            log_probs[:, None], target[None], [len(states)], [len(target)], blank=CTC_BLANK, reduction="sum"
        )
        per_row.append(loss / len(target))
    torch.testing.assert_close(out.ctc_loss, torch.stack(per_row).mean(), rtol=1e-4, atol=1e-4)


def _greedy_ctc(model, batch) -> list[list[int]]:
    with torch.no_grad():
        states = model(**{k: v for k, v in batch.items() if torch.is_tensor(v)}).encoder_last_hidden_state
    out = []
    for i in range(states.shape[0]):
        best = model.phone_ctc_logits(states[i][batch["input_ids"][i] == V.AUDIO_ID]).argmax(-1).tolist()
        out.append([c + V.PHONE_OFFSET for k, c in enumerate(best) if c != CTC_BLANK and (k == 0 or c != best[k - 1])])
    return out


def _edit_distance(a, b) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


@pytest.mark.slow
def test_tiny_model_learns_asr_with_phone_ctc(speech):
    """A tiny model overfits four espeak-ng utterances (SpecAugment on): it transcribes them, and the
    CTC head alone recovers their phones."""
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config(dropout=0.0))
    processor = OFAPlusProcessor.for_config(model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = None
    for step in range(150):
        batch = processor(ASR_CTC, audio=speech, text=SENTENCES, training=True, seed=step)
        out = model(**{k: v for k, v in batch.items() if torch.is_tensor(v)})
        first = first if first is not None else out.ctc_loss.item()
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if out.ctc_loss.item() < 0.3 and out.loss.item() < 1.5:
            break
    assert out.ctc_loss.item() < 0.1 * first
    model.eval()
    batch = processor(ASR_CTC, audio=speech)
    assert processor.postprocess(model.generate(**batch, num_beams=1, max_new_tokens=12), batch) == SENTENCES
    labelled = processor(ASR_CTC, audio=speech, text=SENTENCES)
    for predicted, text in zip(_greedy_ctc(model, labelled), SENTENCES):
        expected = ctc_phone_ids(text, "t")
        assert _edit_distance(predicted, expected) <= 0.25 * len(expected), (phones_to_string(predicted), text)
