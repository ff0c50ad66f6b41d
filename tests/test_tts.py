"""Text-to-speech (AUDIO targets) on real speech: espeak-ng speaks real sentences, a tiny model learns
three utterances of clearly different lengths, and then generates them back, stopping on its own."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest
import torch
import torchaudio
from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline

from conftest import small_config
from ofa_plus import OFAPlusForConditionalGeneration, OFAPlusProcessor
from ofa_plus.instruction import InstructionError
from ofa_plus.outputs.speech import MelSettings, mel_statistics, write_wav
from ofa_plus.plan import LOSS, compile_plan

TTS = "[TEXT:text] -> [AUDIO:audio]"
SENTENCES = [  # (text, espeak-ng voice arguments): about 0.6 s, 2 s and 4 s of speech
    ("Yes.", []),
    ("Good morning, my friend.", ["-v", "en-gb+f1", "-s", "150"]),
    ("The quick brown fox jumps over the lazy dog near the quiet river bank.", []),
]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """WAV paths of the sentences, as espeak-ng speaks them (22.05 kHz, 16-bit mono)."""
    folder = tmp_path_factory.mktemp("speech")
    paths = []
    for k, (text, voice) in enumerate(SENTENCES):
        path = folder / f"{k}.wav"
        subprocess.run(["espeak-ng", *voice, "-w", str(path), text], check=True)
        paths.append(str(path))
    return paths


def read_wav(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth()) == (1, 2)
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768, f.getframerate()


@pytest.fixture(scope="module")
def trained(speech):
    """A tiny model (4 frames per decoder step) trained to say the three sentences: 500 steps (300 left
    the loss above a fifth of its start for some initialisations)."""
    torch.manual_seed(0)
    config = small_config(tts_frames_per_step=4, dropout=0.0, tts_max_frames=400)
    model = OFAPlusForConditionalGeneration(config)
    processor = OFAPlusProcessor.for_config(config)
    batch = processor(TTS, text=[t for t, _ in SENTENCES], audio=speech)
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(500):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), processor, batch, losses


def test_plan_knows_audio_targets_and_keeps_text_tasks():
    plan = compile_plan(TTS)
    assert (plan.generator.kind, plan.loss, plan.generator.num_beams) == ("audio", "tacotron2", 1)
    text = compile_plan("[TEXT:src] -> [TEXT:tgt]")
    assert (text.generator.kind, text.loss) == ("text", LOSS)
    for bad in ("[TEXT:text] -> say [AUDIO:audio]", "[TEXT:text] -> [AUDIO:audio] [TEXT:caption]"):
        with pytest.raises(InstructionError, match="only item on the decoder side"):
            compile_plan(bad)


def test_mel_targets_equal_torchaudio_log_mel(speech):
    config = small_config()
    processor = OFAPlusProcessor.for_config(config)
    batch = processor(TTS, text=["a", "b"], audio=[speech[0], speech[2]])
    settings = processor.mel_settings
    assert (settings.sampling_rate, settings.num_mel_bins, settings.hop_length) == (16000, 80, 256)
    for row, path in enumerate([speech[0], speech[2]]):
        audio, rate = read_wav(path)
        resampled = torchaudio.functional.resample(torch.from_numpy(audio), rate, 16000)
        mel = torchaudio.transforms.MelSpectrogram(
            16000,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            f_min=80.0,
            f_max=7600.0,
            n_mels=80,
            norm="slaney",
            mel_scale="slaney",
        )
        expected = mel(resampled).clamp(min=1e-5).log().T
        length = int(batch["mel_lengths"][row])
        assert length == len(expected) == 1 + len(resampled) // 256
        torch.testing.assert_close(batch["mel_labels"][row, :length], expected, atol=1e-3, rtol=1e-4)
        assert not batch["mel_labels"][row, length:].any()  # zero padding
    assert batch["mel_labels"].shape == (2, int(batch["mel_lengths"].max()), 80)
    assert "labels" not in batch and "decoder_input_ids" not in batch

    # global statistics (per bin, from the data) normalise the targets
    frames = [batch["mel_labels"][row, : batch["mel_lengths"][row]] for row in range(2)]
    mean, std = mel_statistics(frames)
    normalised = OFAPlusProcessor.for_config(small_config(tts_mel_mean=mean, tts_mel_std=std))
    again = normalised(TTS, text=["a", "b"], audio=[speech[0], speech[2]])
    valid = torch.cat([again["mel_labels"][row, : again["mel_lengths"][row]] for row in range(2)])
    torch.testing.assert_close(valid.mean(dim=0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(dim=0)[torch.tensor(std) > 1e-3], torch.ones(80)[torch.tensor(std) > 1e-3])
    torch.testing.assert_close(
        again["mel_labels"][0, :5], (batch["mel_labels"][0, :5] - torch.tensor(mean)) / torch.tensor(std)
    )


def test_bad_audio_targets_name_the_row_and_slot(speech, tmp_path):
    processor = OFAPlusProcessor.for_config(small_config(tts_max_frames=100))
    with pytest.raises(ValueError, match=r"row 1, slot \[AUDIO:audio\].*more than tts_max_frames=100"):
        processor(TTS, text=["a", "b"], audio=[speech[0], speech[2]])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match=r"row 0, slot \[AUDIO:audio\]"):
        processor(TTS, text=["a"], audio=[str(broken)])


@pytest.mark.slow
def test_loss_is_finite_and_falls(trained):
    *_, losses = trained
    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 5


@pytest.mark.slow
def test_generation_stops_on_its_own_near_the_true_length(trained):
    model, processor, batch, _ = trained
    inputs = processor(TTS, text=[t for t, _ in SENTENCES])
    out = model.generate(**inputs)
    true = batch["mel_lengths"]
    assert out.stopped.all(), "every row should end on its stop logit, not at tts_max_frames"
    assert (out.mel_lengths < model.config.tts_max_frames).all()
    assert ((out.mel_lengths - true).abs() <= torch.clamp(true // 10, min=4)).all(), (out.mel_lengths, true)
    assert true[2] > 4 * true[0]  # the short and the long sentence really differ
    for row in range(3):  # the mels are the sentence's, far closer than the mean frame
        n = int(min(out.mel_lengths[row], true[row]))
        target = batch["mel_labels"][row, :n]
        error = (out.sequences[row, :n] - target).abs().mean()
        assert error < 0.5 * (target.mean(dim=0) - target).abs().mean(), row
    # a cap on the decoder steps ends the long row unfinished
    capped = model.generate(**inputs, max_new_tokens=5)
    assert capped.mel_lengths.tolist()[1:] == [20, 20] and not capped.stopped[2]


@pytest.mark.slow
def test_batched_generation_equals_one_by_one(trained):
    model, processor, _, _ = trained
    texts = [t for t, _ in SENTENCES]
    batched = processor(TTS, text=texts)
    together = model.generate(**batched)
    audio_together = processor.postprocess(together, batched)
    for row, text in enumerate(texts):
        single = processor(TTS, text=text)
        alone = model.generate(**single)
        n = int(alone.mel_lengths[0])
        assert n == int(together.mel_lengths[row])
        torch.testing.assert_close(together.sequences[row, :n], alone.sequences[0], atol=1e-4, rtol=1e-4)
        assert not together.sequences[row, n:].any()
        value = processor.postprocess(alone, single)[0]
        assert value["sampling_rate"] == audio_together[row]["sampling_rate"] == 16000
        assert value["audio"].dtype == np.float32 and len(value["audio"]) == (n - 1) * 256
        # Griffin-Lim's iterations magnify the mels' float noise (1e-4) to a few 1e-3 of the waveform
        np.testing.assert_allclose(value["audio"], audio_together[row]["audio"], atol=1e-2)
    with pytest.raises(ValueError, match="num_beams=3"):
        model.generate(**batched, num_beams=3)


@pytest.mark.slow
def test_saved_model_speaks_through_the_pipeline_into_wav_files(trained, tmp_path):
    model, processor, _, _ = trained
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "model").eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path / "model")
    assert loaded_processor.mel_settings == processor.mel_settings == MelSettings.from_config(model.config)

    texts = [SENTENCES[0][0], SENTENCES[2][0]]
    inputs = processor(TTS, text=texts)
    before = model.generate(**inputs)
    after = loaded.generate(**loaded_processor(TTS, text=texts))
    assert after.mel_lengths.tolist() == before.mel_lengths.tolist() and after.stopped.all()
    torch.testing.assert_close(after.sequences, before.sequences)

    pipe = pipeline("multimodal-instruction", model=str(tmp_path / "model"), device="cpu")
    values = pipe(TTS, text=texts, output_dir=str(tmp_path / "wavs"))
    for value, length in zip(values, before.mel_lengths.tolist()):
        assert set(value) == {"audio", "sampling_rate", "path"}
        samples, rate = read_wav(value["path"])
        assert rate == value["sampling_rate"] == 16000
        assert len(samples) == len(value["audio"]) == (length - 1) * 256
        scale = max(1.0, float(np.abs(value["audio"]).max()))  # louder than full scale: scaled down, not clipped
        np.testing.assert_allclose(samples, value["audio"] / scale, atol=2 / 32768)
        assert np.abs(samples).max() > 0.01  # not silence
    assert [p.name for p in sorted((tmp_path / "wavs").iterdir())] == ["0000.wav", "0001.wav"]
    with pytest.raises(ValueError, match="output_dir= writes AUDIO outputs"):
        pipe("[TEXT:src] -> [TEXT:tgt]", src="hello", output_dir=str(tmp_path / "nope"))


class RecordingVocoder(torch.nn.Module):
    """A stand-in neural vocoder: a 22.05 kHz tone as long as the mels, remembering what it was given."""

    sampling_rate = 22050

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(0.5))
        self.calls = []

    def forward(self, mels):
        self.calls.append(mels.clone())
        t = torch.arange(mels.shape[1] * 300) / self.sampling_rate
        return (self.gain * torch.sin(2 * torch.pi * 440 * t))[None]


@pytest.mark.slow
def test_a_neural_vocoder_replaces_griffin_lim_when_set(trained, tmp_path):
    model, processor, _, _ = trained
    inputs = processor(TTS, text=[SENTENCES[0][0], SENTENCES[1][0]])
    out = model.generate(**inputs)
    vocoder = RecordingVocoder()
    processor.vocoder = vocoder
    try:
        values = processor.postprocess(out, inputs)
    finally:
        processor.vocoder = None
    lengths = out.mel_lengths.tolist()
    assert [tuple(c.shape) for c in vocoder.calls] == [(1, n, 80) for n in lengths]
    torch.testing.assert_close(vocoder.calls[1][0], out.sequences[1, : lengths[1]])
    with_mels = processor.postprocess(out, inputs, vocoder=vocoder, return_mels=True)
    np.testing.assert_array_equal(with_mels[1]["mel"], out.sequences[1, : lengths[1]].numpy())
    for value, n in zip(values, lengths):
        assert value["sampling_rate"] == 22050 and len(value["audio"]) == n * 300
    # a plain function works too, per call
    values = processor.postprocess(out, inputs, vocoder=lambda mels: torch.zeros(mels.shape[1] * 10))
    assert [len(v["audio"]) for v in values] == [n * 10 for n in lengths] and values[0]["sampling_rate"] == 16000
    path = write_wav(tmp_path / "tone.wav", values[0]["audio"], values[0]["sampling_rate"])
    assert read_wav(path)[1] == 16000


@pytest.mark.slow
def test_validation_loss_of_a_speech_task(trained, speech):
    from types import SimpleNamespace

    from accelerate import Accelerator

    from ofa_plus.train import validation_losses

    model, processor, batch, _ = trained
    card = SimpleNamespace(name="tts", plan=compile_plan(TTS), training=SimpleNamespace(eval_batch_size=2))
    rows = [{"text": t, "audio": path} for (t, _), path in zip(SENTENCES, speech)]
    losses = validation_losses(model, processor, [card], {"tts": rows}, Accelerator(cpu=True))
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    with torch.no_grad():
        direct = model(**inputs).loss.item()
    assert np.isfinite(losses["tts"]) and losses["tts"] < 3 * direct + 1.0


def test_audio_inputs_reach_the_encoder_of_an_audio_target(speech):
    """[AUDIO] -> [AUDIO]: the training forward and speech generation both encode the input audio."""
    config = small_config(tts_max_frames=400)
    model = OFAPlusForConditionalGeneration(config).eval()
    processor = OFAPlusProcessor.for_config(config)
    instruction = "[AUDIO:source] -> [AUDIO:audio]"
    batch = processor(instruction, source=speech[:2], audio=speech[:2])
    assert "input_features" in batch and "mel_labels" in batch
    out = model(**{k: v for k, v in batch.items() if torch.is_tensor(v)})
    assert torch.isfinite(out.loss)
    generated = model.generate(**processor(instruction, source=speech[:2]), max_new_tokens=3)
    assert generated.sequences.shape[0] == 2 and (generated.mel_lengths <= 6).all()
