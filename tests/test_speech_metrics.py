"""WER and mel-cepstral distortion against values worked out by hand, on arrays and real speech."""

from __future__ import annotations

import io
import math
import subprocess
import wave

import numpy as np
import pytest
from torchcodec.decoders import AudioDecoder

from ofa_plus.metrics import (
    METRICS,
    baseline_name,
    best_constant_baseline,
    compute_metrics,
    log_mel,
    mel_cepstral_distortion,
    normalize_transcript,
    trivial_baseline,
    word_error_rate,
)

ALSA = "/usr/share/sounds/alsa"
K = 10 * math.sqrt(2) / math.log(10)  # MCD's dB factor, 6.1415...
BINS = 80


def score(name, predictions, references):
    return compute_metrics([name], predictions, references)[name]


# --------------------------------------------------------------------------------------------------
# wer
# --------------------------------------------------------------------------------------------------


def test_transcript_normalisation():
    assert normalize_transcript("  The Cat's  hat, \u201cisn\u2019t\u201d it?  ") == "the cat's hat isn't it"
    assert normalize_transcript("'quoted' well-known  e.g.") == "quoted well known e g"
    assert normalize_transcript(None) == ""


def test_wer_by_hand():
    # row 1: "a" for "the" -> 1 substitution of 6 words; row 2: one inserted word of 2
    predictions = ["The cat sat on a mat.", "hello there world"]
    references = ["the cat sat on the mat", "Hello, world!"]
    assert score("wer", predictions, references) == pytest.approx(100 * 2 / 8)
    # corpus-level: errors and words are summed before dividing (not a mean of 1/6 and 1/2)
    assert word_error_rate(predictions, references) != pytest.approx(100 * (1 / 6 + 1 / 2) / 2)
    # a deletion and a substitution: "sat mat" for "the cat sat" -> delete "the", "cat" -> ... 2 errors of 3
    assert score("wer", ["cat sat mat"], ["the cat sat"]) == pytest.approx(100 * 2 / 3)


def test_wer_none_is_an_empty_transcript_and_wer_can_exceed_100():
    assert score("wer", [None, "b c"], ["x y", "b c"]) == pytest.approx(100 * 2 / 4)
    assert score("wer", [None], ["one two three"]) == 100.0
    assert score("wer", ["b c d"], ["a"]) == pytest.approx(300.0)  # 1 substitution + 2 insertions of 1 word


def test_wer_several_references_takes_the_closest():
    # "a dog" against "the dog" is 1 error of 2 words, against "a dog" 0 of 2
    assert score("wer", ["a dog"], [["the dog", "a dog"]]) == 0.0
    assert score("wer", ["a dog", "x"], [["the dog", "one big dog"], "x"]) == pytest.approx(100 * 1 / 3)


def test_wer_needs_words_in_the_references():
    with pytest.raises(ValueError, match="no words"):
        score("wer", ["a"], ["  ,  "])
    with pytest.raises(ValueError, match="row 0 has no reference"):
        word_error_rate(["a"], [[]])


def test_wer_and_mcd_are_lower_is_better_and_the_baseline_knows_it():
    assert not METRICS["wer"].higher_is_better and not METRICS["mcd"].higher_is_better
    # the most frequent transcript ("a dog") is all wrong here; the rarer "the cat" is exact: a
    # baseline that maximised WER would pick "a dog"
    scores, answer = best_constant_baseline(["wer"], ["a dog", "the cat", "a dog"], ["the cat", "the cat"])
    assert answer == "the cat" and scores == {"wer": 0.0}


# --------------------------------------------------------------------------------------------------
# mcd on log-mel arrays
# --------------------------------------------------------------------------------------------------


def cepstrum(k: int, value: float) -> np.ndarray:
    """A log-mel-power frame whose cepstrum is `value` at coefficient k and 0 elsewhere (k >= 1).

    The cepstra are of the log amplitude (half the log power), c_k = (1/N) sum_n x_n cos(...), and
    sum_n cos^2(...) = N / 2 for k >= 1: a log-power cosine of height 4v gives c_k = v.
    """
    n = np.arange(BINS)
    return 4 * value * np.cos(np.pi * k * (2 * n + 1) / (2 * BINS))


def test_mcd_of_identical_or_level_shifted_spectrograms_is_zero():
    rng = np.random.default_rng(0)
    mels = rng.normal(size=(30, BINS))
    assert mel_cepstral_distortion([mels], [mels]) == pytest.approx(0.0, abs=1e-6)
    # a louder copy differs only in c0, which MCD drops
    assert mel_cepstral_distortion([mels + 3.0], [mels]) == pytest.approx(0.0, abs=1e-6)


def test_mcd_of_one_cepstral_coefficient_by_hand():
    base = np.zeros((5, BINS))
    # c3 moved by exactly 1: MCD = K * 1
    assert mel_cepstral_distortion([base + cepstrum(3, 1.0)], [base]) == pytest.approx(K)
    # c1 and c2 moved by 0.3 and 0.4: distance 0.5
    assert mel_cepstral_distortion([base + cepstrum(1, 0.3) + cepstrum(2, 0.4)], [base]) == pytest.approx(K * 0.5)
    # coefficients beyond c13 are not counted (unless asked for)
    assert mel_cepstral_distortion([base + cepstrum(20, 1.0)], [base]) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion([base + cepstrum(20, 1.0)], [base], num_cepstra=24) == pytest.approx(K)
    # the corpus score is the mean over utterances: (K + 0) / 2
    assert mel_cepstral_distortion([base + cepstrum(3, 1.0), base], [base, base]) == pytest.approx(K / 2)


def test_mcd_aligns_frames_by_dynamic_time_warping():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(12, BINS))
    slower = np.repeat(reference, 2, axis=0)  # the same frames, each held twice
    assert mel_cepstral_distortion([slower], [reference]) == pytest.approx(0.0, abs=1e-6)
    # by hand: c1 = 0, 1, 2 in the reference and 0, 2 in the prediction. Distances |p - r|:
    #   p=0: 0 1 2      cheapest path (0,0) (0,1) (1,2) or (0,0) (1,1) (1,2): 0 + 1 + 0 = 1 over
    #   p=2: 2 1 0      3 pairs, so MCD = K / 3
    reference = np.stack([cepstrum(1, c) for c in (0, 1, 2)])
    predicted = np.stack([cepstrum(1, c) for c in (0, 2)])
    assert mel_cepstral_distortion([predicted], [reference]) == pytest.approx(K / 3)


def test_mcd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="prediction 0 must be a"):
        mel_cepstral_distortion([np.zeros(BINS)], [np.zeros((3, BINS))])
    with pytest.raises(ValueError, match="row 0 has 40 mel bins predicted, 80"):
        mel_cepstral_distortion([np.zeros((3, 40))], [np.zeros((3, BINS))])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        mel_cepstral_distortion([np.zeros((3, BINS))] * 2, [np.zeros((3, BINS))])
    with pytest.raises(ValueError, match=r"shape \(frames, 80\)"):
        score("mcd", [np.zeros((3, 40))], [np.zeros((3, BINS))])


# --------------------------------------------------------------------------------------------------
# mcd on real speech
# --------------------------------------------------------------------------------------------------


def espeak(text: str, voice: str = "en-us") -> dict:
    """espeak-ng speech as the pipeline returns audio: {"audio": float array, "sampling_rate": int}."""
    data = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(data)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return {"audio": samples.astype(np.float32) / 32768, "sampling_rate": w.getframerate()}


def test_log_mel_is_the_tts_target_analysis():
    # torchaudio's MelSpectrogram with the TTS target settings (the model config's defaults) is the reference
    import torchaudio

    samples, rate = AudioDecoder(f"{ALSA}/Front_Center.wav").get_all_samples().data[0], 48000
    wave16 = torchaudio.functional.resample(samples, rate, 16000)
    reference = (
        torchaudio.transforms.MelSpectrogram(
            16000,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            f_min=80.0,
            f_max=7600.0,
            n_mels=80,
            power=2.0,
            norm="slaney",
            mel_scale="slaney",
        )(wave16)
        .clamp(min=1e-5)
        .log()
        .T
    )
    ours = log_mel({"array": samples.numpy(), "sampling_rate": rate})
    assert ours.shape == tuple(reference.shape)
    assert np.abs(ours - reference.double().numpy()).max() < 1e-2  # float64 here, float32 there


def test_a_prediction_s_own_mel_is_scored_before_the_vocoder():
    reference = espeak("the cat sat on the mat")
    mels = log_mel(reference)
    silent = {"audio": np.zeros(16000, dtype=np.float32), "sampling_rate": 16000}
    assert score("mcd", [{**silent, "mel": mels}], [reference]) == pytest.approx(0.0, abs=1e-6)
    # without a "mel" the waveform is analysed: silence, worse than another voice saying the sentence
    assert score("mcd", [silent], [reference]) > score("mcd", [espeak("the cat sat on the mat", "en-gb")], [reference])


def test_an_empty_generation_scores_as_silence():
    reference = espeak("good morning")
    silence = score("mcd", [None], [reference])
    assert score("mcd", [{"audio": np.zeros(0, dtype=np.float32), "sampling_rate": 16000}], [reference]) == silence
    assert (
        score("mcd", [{"audio": np.zeros(0), "sampling_rate": 16000, "mel": np.zeros((0, BINS))}], [reference])
        == silence
    )
    with pytest.raises(ValueError, match="reference of row 0: the audio is empty"):
        score("mcd", [reference], [{"audio": np.zeros(0), "sampling_rate": 16000}])


def test_log_mel_frames_and_resampling():
    tone = {"array": np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), "sampling_rate": 16000}
    mels = log_mel(tone)
    assert mels.shape == (1 + 16000 // 256, BINS)
    # 440 Hz lands in the low mel bins: the loudest bin of a middle frame is below bin 20
    assert mels[30].argmax() < 20 and mels[30].max() > mels[30].min() + 5
    # the same tone given at 48 kHz is resampled to 16 kHz first: same frames, near-zero distortion
    tone48 = {"array": np.sin(2 * np.pi * 440 * np.arange(48000) / 48000), "sampling_rate": 48000}
    assert log_mel(tone48).shape == mels.shape
    assert score("mcd", [tone48], [tone]) < 0.5
    with pytest.raises(ValueError, match="needs its sampling rate"):
        log_mel({"array": np.zeros(10)})
    with pytest.raises(ValueError, match="the audio is empty"):
        log_mel({"array": np.zeros(0), "sampling_rate": 16000})
    # a clip shorter than half a window still gives a frame (zero padding instead of reflection)
    assert log_mel({"array": np.full(100, 0.1), "sampling_rate": 16000}).shape == (1, BINS)


def test_mcd_on_real_speech():
    center = AudioDecoder(f"{ALSA}/Front_Center.wav")  # what a datasets Audio() column yields
    same = score("mcd", [{"path": f"{ALSA}/Front_Center.wav"}], [center])
    other_words = score("mcd", [{"path": f"{ALSA}/Front_Left.wav"}], [center])
    silence = score("mcd", [None], [center])
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0.5 < other_words < silence
    # espeak-ng: the same sentence by another voice is closer than a different sentence by the same voice
    sentence = espeak("the cat sat on the mat", "en-us")
    other_voice = score("mcd", [espeak("the cat sat on the mat", "en-gb+f1")], [sentence])
    other_sentence = score("mcd", [espeak("seven green bottles fell down", "en-us")], [sentence])
    assert 0 < other_voice < other_sentence


def test_mean_log_mel_baseline():
    targets = [np.zeros((2, BINS)), np.ones((4, BINS))]  # log-mel arrays count as audio targets
    guess = trivial_baseline(targets, 1)[0]
    # mean frame over all 6 frames is 4/6; length is the mean clip length, 3 frames
    assert guess.shape == (3, BINS) and np.allclose(guess, 4 / 6)
    assert baseline_name(targets) == "mean log-mel frame"
    clips = [espeak(text) for text in ("good morning", "where is the station", "it is raining again today")]
    scores, answer = best_constant_baseline(["mcd"], clips, clips)
    assert answer.shape[1] == BINS
    assert scores["mcd"] < score("mcd", [None] * 3, clips)  # better than silence
    assert scores["mcd"] > 0.5  # and far from the clips themselves


def test_mcd_constants_are_the_tts_target_defaults():
    from ofa_plus.metrics import MEL_BINS, MEL_FLOOR
    from ofa_plus.outputs.speech import MelSettings

    assert (MEL_BINS, MEL_FLOOR) == (MelSettings().num_mel_bins, MelSettings().log_floor)
