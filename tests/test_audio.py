"""AUDIO inputs: decoding every value form, resampling, Kaldi filterbanks, SpecAugment, the processor
and feature extractor, bad audio in training, and the encoder's audio segments (no leakage)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import wave
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torchaudio
import yaml

import ofa_plus.vocabulary as V
from conftest import small_config
from ofa_plus import OFAPlusForConditionalGeneration, OFAPlusProcessor, load_cards
from ofa_plus.modalities.audio import OFAPlusAudioFeatureExtractor, audio_token_count, load_audio, pad_features
from ofa_plus.multitask import TaskStream, collate

ALSA = Path("/usr/share/sounds/alsa")
ASR = "[AUDIO:audio] what is the text of the speech? -> [TEXT:text]"
SENTENCES = [
    "the cat sat on the mat",
    "open the door please",
    "seven green apples",
    "she sells sea shells by the sea shore",
]


def espeak_wav(path: Path, text: str, voice: str = "en-us", speed: int = 160) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Independent reference decoder (Python's wave module): int16 samples (frames, channels), rate."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return data, w.getframerate()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("speech")
    return [espeak_wav(folder / f"{i}.wav", text) for i, text in enumerate(SENTENCES)]


def sine(rate: int, seconds: float = 1.0, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave_16k: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(wave_16k.numpy()))
    return float(np.fft.rfftfreq(len(wave_16k), 1 / 16000)[spectrum.argmax()])


# ------------------------------------------------------------------------------------ features
def test_fbank_equals_torchaudio_kaldi_fbank(speech):
    extractor = OFAPlusAudioFeatureExtractor()
    waveform = load_audio(str(speech[0]), "test")
    ours = extractor.fbank(waveform)
    reference = torchaudio.compliance.kaldi.fbank(
        waveform[None] * 32768.0, num_mel_bins=80, sample_frequency=16000, dither=0.0
    )
    assert ours.shape == (1 + (len(waveform) - 400) // 160, 80)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)
    # utterance CMVN: every mel bin has mean 0 and standard deviation 1
    features = extractor.features(waveform)
    torch.testing.assert_close(features.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(features.std(0, unbiased=False), torch.ones(80), atol=1e-3, rtol=0)
    # a 1 kHz tone peaks in the mel bin centred nearest 1 kHz (Kaldi: 80 bins evenly spaced in mel, 20 Hz - 8 kHz)
    tone = extractor.fbank(load_audio(sine(16000, freq=1000.0), "tone", sampling_rate=16000))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    centres = mel(20.0) + (np.arange(80) + 1) * (mel(8000.0) - mel(20.0)) / 81
    assert int(tone.mean(0).argmax()) == int(np.abs(centres - mel(1000.0)).argmin())


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("form", ["float32", "float64", "int16", "int32", "stereo", "stereo_last", "torch"])
def test_resampling_keeps_length_and_frequency(rate, form):
    mono = sine(rate)
    if form == "float64":
        value = mono.astype(np.float64)
    elif form == "int16":
        value = np.round(mono * 32767).astype(np.int16)
    elif form == "int32":
        value = np.round(mono.astype(np.float64) * 2**31).astype(np.int32)
    elif form == "stereo":  # (channels, samples): a sine on the left, silence on the right -> half amplitude
        value = np.stack([mono, np.zeros_like(mono)])
    elif form == "stereo_last":  # (samples, channels), as soundfile returns it
        value = np.stack([mono, mono], axis=1)
    elif form == "torch":
        value = torch.from_numpy(mono)
    else:
        value = mono
    out = load_audio(value, "test", sampling_rate=rate)
    assert out.dtype == torch.float32 and out.ndim == 1
    assert abs(len(out) - 16000) <= 1
    assert abs(peak_frequency(out) - 440.0) <= 1.0
    expected_peak = 0.25 if form == "stereo" else 0.5
    middle = out[1000:-1000]  # away from the resampler's edge effects
    assert abs(float(middle.abs().max()) - expected_peak) < 0.01
    if rate == 16000 or form != "float32":
        return
    # a different sine keeps its own frequency (the test would notice a wrong rate)
    assert abs(peak_frequency(load_audio(sine(rate, freq=1000.0), "test", sampling_rate=rate)) - 1000.0) <= 1.0


def test_wrong_sampling_rate_changes_pitch_so_it_is_required():
    # the same samples read at the wrong rate come out an octave off: hence arrays need sampling_rate=
    assert abs(peak_frequency(load_audio(sine(8000), "t", sampling_rate=16000)) - 440.0) > 200


def test_every_input_form_gives_the_same_waveform(speech, tmp_path):
    path = speech[1]
    samples, rate = read_wav(path)
    reference = load_audio(samples[:, 0], "ref", sampling_rate=rate)
    raw = path.read_bytes()
    column = datasets.Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", datasets.Audio())
    undecoded = column.cast_column("audio", datasets.Audio(decode=False))
    forms = {
        "path": str(path),
        "pathlib": path,
        "bytes": raw,
        "file object": io.BytesIO(raw),
        "path dict": {"path": str(path)},
        "bytes dict": {"bytes": raw, "path": None},
        "array dict": {"array": samples[:, 0], "sampling_rate": rate},
        "float array dict": {"array": samples[:, 0] / 32768.0, "sampling_rate": rate},
        "datasets Audio()": column[0]["audio"],
        "datasets Audio(decode=False)": undecoded[0]["audio"],
        "torch int16": torch.from_numpy(samples[:, 0].copy()),
    }
    for name, value in forms.items():
        out = load_audio(value, name, sampling_rate=rate if name == "torch int16" else None)
        assert out.shape == reference.shape, name
        torch.testing.assert_close(out, reference, atol=1e-4, rtol=0, msg=name)
    assert abs(len(reference) - round(len(samples) * 16000 / rate)) <= 1


def test_alsa_recordings_decode_to_mono_16k():
    for path in sorted(ALSA.glob("*.wav")):
        samples, rate = read_wav(path)
        out = load_audio(str(path), path.name)
        assert abs(len(out) - round(len(samples) * 16000 / rate)) <= 1
        assert 0.01 < float(out.abs().max()) <= 1.0


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (b"RIFF\x00\x00\x00\x00WAVEnot really a wav file", {}, "cannot decode audio"),
        (b"", {}, "audio bytes are empty"),
        ("/no/such/file.wav", {}, "does not exist"),
        (np.zeros(0, dtype=np.float32), {"sampling_rate": 16000}, "empty"),
        (np.zeros(16000, dtype=np.float32), {}, "needs its sampling rate"),
        ({"array": np.zeros(16000, dtype=np.float32)}, {}, "needs its sampling rate"),
        (np.zeros(16000, dtype=np.float32), {"sampling_rate": 0}, "not a plausible rate"),
        (np.zeros(16000, dtype=np.float32), {"sampling_rate": -16000}, "not a plausible rate"),
        (np.zeros(16000, dtype=np.float32), {"sampling_rate": 16_000_000}, "not a plausible rate"),
        (np.zeros(16000, dtype=np.float32), {"sampling_rate": 22050.5}, "not a plausible rate"),
        (np.full(16000, np.nan, dtype=np.float32), {"sampling_rate": 16000}, "NaN"),
        (np.zeros(16000 * 5, dtype=np.float32), {"sampling_rate": 16000, "max_seconds": 4.0}, "longer than the limit"),
        (np.zeros((2, 3, 16000), dtype=np.float32), {"sampling_rate": 16000}, "must be 1-D"),
        ({"text": "hello"}, {}, "needs 'array'"),
        (12345, {}, "expected an audio path"),
    ],
)
def test_bad_audio_gives_clear_errors(value, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        load_audio(value, "task 'asr', row 4, slot [AUDIO:audio]", **kwargs)
    assert "task 'asr', row 4, slot [AUDIO:audio]" in str(info.value)


def test_processor_errors_name_task_row_and_slot(speech):
    processor = OFAPlusProcessor.for_config(small_config())
    good = str(speech[0])
    cases = [
        (b"garbage", "cannot decode"),
        (np.zeros(16000, dtype=np.float32), "needs its sampling rate"),
        (np.zeros(800, dtype=np.float32), "shorter than"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            rate = 16000 if message == "shorter than" else None
            processor(ASR, audio=[good, bad], text=["a", "b"], sampling_rate=rate)
        assert "row 1, slot [AUDIO:audio]" in str(info.value)
    too_long = OFAPlusProcessor.for_config(small_config())
    too_long.feature_extractor.max_audio_seconds = 1.0
    with pytest.raises(ValueError, match="longer than the limit of 1 s"):
        too_long(ASR, audio=good, text="a")


# ------------------------------------------------------------------------------------ processor
def test_processor_audio_batch_layout(speech):
    processor = OFAPlusProcessor.for_config(small_config())
    batch = processor(ASR, audio=[str(p) for p in speech[:3]], text=SENTENCES[:3])
    features, mask = batch["input_features"], batch["input_features_mask"]
    assert features.shape[0] == 3 and features.shape[2] == 80 and mask.shape == features.shape[:2]
    frames = mask.sum(1)
    assert len(set(frames.tolist())) == 3  # different lengths, padded with zeros
    for i in range(3):
        assert int((batch["input_ids"][i] == V.AUDIO_ID).sum()) == audio_token_count(int(frames[i]))
        assert bool((features[i, int(frames[i]) :] == 0).all())
        alone = processor(ASR, audio=str(speech[i]), text=SENTENCES[i])
        torch.testing.assert_close(alone["input_features"][0], features[i, : int(frames[i])])
    # the audio comes first, then the prompt in BOS ... EOS
    ids = batch["input_ids"][0].tolist()
    n = ids.count(V.AUDIO_ID)
    assert ids[:n] == [V.AUDIO_ID] * n and ids[n] == V.BOS_ID
    assert "ctc_labels" not in batch  # only text_phone targets ask for phones


def test_spec_augment_only_in_training_and_reproducible(speech):
    processor = OFAPlusProcessor.for_config(small_config())
    kwargs = dict(audio=[str(p) for p in speech[:2]], text=SENTENCES[:2])
    plain = processor(ASR, **kwargs)["input_features"]
    torch.testing.assert_close(processor(ASR, **kwargs)["input_features"], plain)
    assert int((plain == 0).sum()) == int((processor(ASR, **kwargs)["input_features_mask"] == 0).sum()) * 80
    augmented = processor(ASR, training=True, seed=3, **kwargs)["input_features"]
    again = processor(ASR, training=True, seed=3, **kwargs)["input_features"]
    other = processor(ASR, training=True, seed=4, **kwargs)["input_features"]
    torch.testing.assert_close(augmented, again)  # reproducible from the seed
    assert not torch.equal(augmented, other) and not torch.equal(augmented, plain)
    changed = augmented != plain
    assert bool((augmented[changed] == 0).all())  # SpecAugment only zeroes (masks)
    # whole mel bands (columns) and whole frame spans (rows) are masked
    extractor = processor.feature_extractor
    masked = extractor.spec_augment(torch.ones(300, 80), random.Random(0))
    zero_bins = (masked == 0).all(dim=0).sum()
    zero_frames = (masked == 0).all(dim=1).sum()
    assert 0 < zero_bins <= extractor.num_freq_masks * extractor.freq_mask_width
    assert 0 < zero_frames <= extractor.num_time_masks * min(extractor.time_mask_width, 30)


def test_processor_save_load_round_trip_with_feature_extractor(tmp_path, speech):
    processor = OFAPlusProcessor.for_config(small_config())
    processor.feature_extractor = OFAPlusAudioFeatureExtractor(max_audio_seconds=12.5, freq_mask_width=9)
    processor.save_pretrained(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "processor_config.json").read_text())
    assert config["feature_extractor"]["feature_extractor_type"] == "OFAPlusAudioFeatureExtractor"
    loaded = OFAPlusProcessor.from_pretrained(tmp_path / "p")
    assert isinstance(loaded.feature_extractor, OFAPlusAudioFeatureExtractor)
    assert loaded.feature_extractor.max_audio_seconds == 12.5 and loaded.feature_extractor.freq_mask_width == 9
    kwargs = dict(audio=str(speech[0]), text=SENTENCES[0], training=True, seed=7)
    for key in ("input_ids", "input_features", "input_features_mask", "labels"):
        torch.testing.assert_close(loaded(ASR, **kwargs)[key], processor(ASR, **kwargs)[key])
    # a processor saved before audio support (no feature extractor) still loads, with the default one
    del config["feature_extractor"]
    (tmp_path / "p" / "processor_config.json").write_text(json.dumps(config))
    old = OFAPlusProcessor.from_pretrained(tmp_path / "p")
    assert old.feature_extractor.max_audio_seconds == OFAPlusAudioFeatureExtractor().max_audio_seconds


def test_feature_extractor_call_pads_and_masks(speech):
    extractor = OFAPlusAudioFeatureExtractor()
    waves = [load_audio(str(p), "t") for p in speech[:2]]
    out = extractor([w.numpy() for w in waves], sampling_rate=16000)
    assert out["input_features"].shape[0] == 2 and out["input_features_mask"].dtype == torch.long
    for i, w in enumerate(waves):
        torch.testing.assert_close(
            out["input_features"][i, : out["input_features_mask"][i].sum()], extractor.features(w)
        )


# ------------------------------------------------------------------------------------ training
def _asr_card_with_bad_rows(folder: Path, speech: list[Path], instruction: str = ASR) -> Path:
    """An ASR dataset (datasets.Audio column) whose train rows 4, 5, 6 are corrupt, empty, too long."""
    good = [{"audio": str(p), "text": t} for p, t in zip(speech, SENTENCES)]
    rows = good + [
        {"audio": {"bytes": b"RIFF....WAVEjunk", "path": None}, "text": "corrupt"},
        {"audio": {"bytes": _silent_wav(0), "path": None}, "text": "empty"},
        {"audio": {"bytes": _silent_wav(16000 * 40), "path": None}, "text": "too long"},
    ]
    features = datasets.Features({"audio": datasets.Audio(), "text": datasets.Value("string")})
    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows, features=features),
            "validation": datasets.Dataset.from_list(good[:2], features=features),
            "test": datasets.Dataset.from_list(good[2:], features=features),
        }
    )
    data.save_to_disk(str(folder / "data"))
    (folder / "cards").mkdir()
    (folder / "cards" / "asr.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "asr",
                "instruction": instruction,
                "dataset": {"path": str(folder / "data")},
                "metrics": ["exact_match"],
                "training": {"batch_size": 7, "eval_batch_size": 4},
            }
        )
    )
    return folder / "cards" / "asr.yaml"


def test_bad_audio_rows_are_skipped_and_counted_in_training(tmp_path, speech):
    card = load_cards([_asr_card_with_bad_rows(tmp_path, speech)])[0]
    stream = TaskStream.for_card(card, 0, seed=0)
    indices = stream.next_indices()
    processor = OFAPlusProcessor.for_config(small_config())
    batch, skipped = collate(processor, card, stream.rows(indices), indices, training=True, rng=random.Random(0))
    reasons = {s.index: s.reason for s in skipped}
    assert sorted(reasons) == [4, 5, 6]
    assert "cannot decode audio" in reasons[4] and "empty" in reasons[5] and "longer than the limit" in reasons[6]
    assert all("task 'asr'" in r and "[AUDIO:audio]" in r for r in reasons.values())
    assert batch["input_features"].shape[0] == 4 and batch["input_ids"].shape[0] == 4


@pytest.mark.slow
def test_trainer_skips_bad_audio_and_trains_with_phone_ctc(tmp_path, speech):
    root = Path(__file__).resolve().parents[1]
    card = _asr_card_with_bad_rows(tmp_path, speech, ASR.replace("[TEXT:text]", "[TEXT:text,preprocess=text_phone]"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "PYTHONPATH": str(root),
    }
    command = [
        sys.executable,
        "-m",
        "ofa_plus.train",
        "--cards",
        str(card),
        "--output",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--image-size",
        "64",
        "--config-overrides",
        "encoder_layers=2,decoder_layers=2",
    ]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    skipped = json.loads((tmp_path / "run" / "skipped_rows.json").read_text())
    assert {s["index"] for s in skipped} == {4, 5, 6} and all(s["task"] == "asr" for s in skipped)
    assert "skipped rows: task 'asr'" in done.stdout and "3 distinct row(s)" in done.stdout
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 2 and all(np.isfinite(losses))


def _silent_wav(samples: int, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ model
def test_audio_batch_equals_rows_alone_forward_and_backward(speech):
    """Audios of different lengths in one batch: each row's encoder states,
    logits and loss equal the row alone, so nothing leaks across rows or into padding."""
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config(dropout=0.0)).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    plan_rows = [(ASR, str(speech[i]), SENTENCES[i]) for i in range(3)]
    batch = processor(ASR, audio=[r[1] for r in plan_rows], text=[r[2] for r in plan_rows])
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    out = model(**inputs)
    for i, (_, path, text) in enumerate(plan_rows):
        alone = processor(ASR, audio=path, text=text)
        single = model(**{k: v for k, v in alone.items() if torch.is_tensor(v)})
        n = alone["input_ids"].shape[1]
        torch.testing.assert_close(
            out.encoder_last_hidden_state[i, :n], single.encoder_last_hidden_state[0], atol=1e-4, rtol=1e-4
        )
        m = alone["labels"].shape[1]
        torch.testing.assert_close(out.logits[i, :m], single.logits[0], atol=1e-4, rtol=1e-4)
    # backward: gradients reach the audio adaptor, and only real frames feed it
    out.loss.backward()
    grad = model.model.encoder.audio_adaptor.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    features = inputs["input_features"].clone().requires_grad_(True)
    model.zero_grad()
    model(**{**inputs, "input_features": features}).loss.backward()
    frames = inputs["input_features_mask"].sum(1)
    for i in range(3):
        assert float(features.grad[i, int(frames[i]) :].abs().sum()) == 0.0  # padding frames are unused
        assert float(features.grad[i, : int(frames[i])].abs().sum()) > 0.0


def test_adjacent_audios_are_separate_segments(speech):
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config(dropout=0.0)).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    two = "[AUDIO:a] [AUDIO:b] are these the same words? -> [TEXT:answer]"
    batch = processor(two, a=str(speech[0]), b=str(speech[1]), answer="no")
    counts = audio_token_count(batch["input_features_mask"].sum(1)).tolist()
    ids = batch["input_ids"][0]
    assert ids[: sum(counts)].tolist() == [V.AUDIO_ID] * sum(counts)
    encoder = model.model.encoder
    embeddings = encoder.embed_tokens(batch["input_ids"])
    _, audio_start = encoder.embed_inputs(
        embeddings,
        batch["input_ids"],
        input_features=batch["input_features"],
        input_features_mask=batch["input_features_mask"],
    )
    assert audio_start[0].nonzero().flatten().tolist() == [0, counts[0]]
    _, segment_id, position = encoder.segment_layout(batch["input_ids"], audio_start)
    assert position[0, : sum(counts)].tolist() == list(range(counts[0])) + list(range(counts[1]))
    assert segment_id[0, counts[0]] == segment_id[0, 0] + 1 and position[0, sum(counts)] == 0
    # a mismatch between placeholders and features is an error, not a silent shift
    with pytest.raises(ValueError, match="audio tokens after subsampling"):
        model(
            input_ids=batch["input_ids"],
            input_features=batch["input_features"][:1],
            input_features_mask=batch["input_features_mask"][:1],
            labels=batch["labels"],
        )


def test_batched_generation_equals_one_by_one(speech):
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config()).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    paths = [str(p) for p in speech[:3]]
    batch = processor(ASR, audio=paths)
    together = processor.postprocess(model.generate(**batch, num_beams=2, max_new_tokens=6), batch)
    alone = []
    for path in paths:
        one = processor(ASR, audio=path)
        alone += processor.postprocess(model.generate(**one, num_beams=2, max_new_tokens=6), one)
    assert together == alone


def test_generation_grouped_by_prompt_length_keeps_each_rows_audio(speech):
    """Rows whose decoder prompts differ in length are generated group by group: each group must get
    its own rows' audios (input_features are per audio, not per row)."""
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config()).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    instruction = "[AUDIO:audio] -> [TEXT:prefix,no_loss] [TEXT:text]"
    paths, prefixes = [str(p) for p in speech[:3]], ["one", "one two three four", "five six"]
    batch = processor(instruction, audio=paths, prefix=prefixes)
    together = processor.postprocess(model.generate(**batch, num_beams=1, max_new_tokens=5), batch)
    alone = []
    for path, prefix in zip(paths, prefixes):
        one = processor(instruction, audio=path, prefix=prefix)
        alone += processor.postprocess(model.generate(**one, num_beams=1, max_new_tokens=5), one)
    assert together == alone


def test_image_and_audio_rows_mixed_with_text_only_rows(speech, images):
    """A batch whose rows have different layouts (image + audio of different lengths, text only):
    every row's encoder states equal the row's alone (biases per layout, features per audio)."""
    torch.manual_seed(0)
    model = OFAPlusForConditionalGeneration(small_config(dropout=0.0)).eval()
    processor = OFAPlusProcessor.for_config(model.config)
    both = "[IMAGE:image] [AUDIO:audio] what is said about the image? -> [TEXT:answer]"
    rows = [
        processor(both, image=images[0], audio=str(speech[0])),
        processor(both, image=images[1], audio=str(speech[3])),
    ]
    text_only = [V.BOS_ID] + list(range(9600, 9620)) + [V.EOS_ID]
    sequences = [rows[0]["input_ids"][0].tolist(), text_only, rows[1]["input_ids"][0].tolist()]
    width = max(map(len, sequences))
    input_ids = torch.tensor([s + [V.PAD_ID] * (width - len(s)) for s in sequences])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    features = [r["input_features"][0] for r in rows]
    audio = pad_features(features)
    encoder = model.get_encoder()
    with torch.no_grad():
        batched = encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=torch.cat([r["pixel_values"] for r in rows]),
            **audio,
        ).last_hidden_state
        singles = [
            encoder(
                input_ids=rows[0]["input_ids"],
                pixel_values=rows[0]["pixel_values"],
                input_features=rows[0]["input_features"],
                input_features_mask=rows[0]["input_features_mask"],
            ).last_hidden_state[0],
            encoder(input_ids=torch.tensor([text_only])).last_hidden_state[0],
            encoder(
                input_ids=rows[1]["input_ids"],
                pixel_values=rows[1]["pixel_values"],
                input_features=rows[1]["input_features"],
                input_features_mask=rows[1]["input_features_mask"],
            ).last_hidden_state[0],
        ]
    for i, single in enumerate(singles):
        torch.testing.assert_close(batched[i, : len(single)], single, atol=1e-4, rtol=1e-4)
    assert len(sequences[0]) != len(sequences[2])  # the two audios differ in length
