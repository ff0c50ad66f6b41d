"""OFA+ configuration: one shared encoder-decoder in OFA's style, plus per-modality adaptor settings.

`OFAPlusConfig` is a strict, typed dataclass in the style of transformers 5: a value of the wrong
type is refused when it is set, and the ``validate_*`` methods check how the values fit together
(huggingface_hub's ``@strict`` runs them after ``__init__`` and `save_pretrained` runs them again).
The mel analysis of speech targets (`MelSettings`) and the image grid rule (`image_grid_size`) are
defined here once; the config's ``tts_*`` defaults come from `MelSettings`.
"""

import copy
import dataclasses
from dataclasses import dataclass, field

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from . import vocabulary as V

# vocab_size of base/large leaves room for a 50k-piece text vocabulary, like OFA's GPT-2 BPE
# (OFA's own table: 50,265 BPE + 1,000 bins + 8,192 codes = 59,457 rows).
_OFA_SIZED_VOCAB = V.TEXT_OFFSET + 50_048

PRESETS: dict[str, dict] = {
    # CPU tests and the default run: OFA's own "tiny" transformer (256 d, 4+4 layers, 4 heads)
    # with a ResNet-18 stem and small images. Without NormFormer's extra LayerNorms: trained from
    # scratch for minutes, the LayerNorm after cross-attention keeps the decoder from using the
    # encoder; plain pre-LN learns at once.
    # Initialised with std d_model ** -0.5 rather than OFA's 0.02: at 256 d, 0.02 leaves the decoder
    # almost blind to the encoder at the start, so a short run from scratch hardly uses the input.
    # With OFA's cross-attention position bias: without it the decoder finds encoder positions by
    # content alone, and tasks that copy or align (sudoku, speech) take several times the steps
    # (docs/generalist_investigation.md, section 8).
    "tiny": dict(
        d_model=256,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=1024,
        decoder_ffn_dim=1024,
        image_backbone="resnet18",
        image_size=128,
        vocab_size=V.TEXT_OFFSET + 8_000,
        normformer=False,
        init_std=256**-0.5,
        audio_conv_channels=64,
        label_smoothing=0.1,  # the presets are training recipes: OFA's label smoothing
        target_vocab="modality",
        cross_position_bias=True,
        # 32 location bins: on its 64-128 px images 1,000 would be finer than the pixels, and a
        # grounding specialist points at the named sprite within the main job's budget with 32 only
        num_bins=32,
    ),
    # OFA-base: 768 d, 6+6 layers, 12 heads, ResNet-101 up to stage 3, 480 px -> 30x30 patches.
    "base": dict(
        d_model=768,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=12,
        decoder_attention_heads=12,
        encoder_ffn_dim=3072,
        decoder_ffn_dim=3072,
        image_backbone="resnet101",
        image_size=480,
        vocab_size=_OFA_SIZED_VOCAB,
        label_smoothing=0.1,
        cross_position_bias=True,
    ),
    # OFA-large: 1024 d, 12+12 layers, 16 heads, ResNet-152 up to stage 3.
    "large": dict(
        d_model=1024,
        encoder_layers=12,
        decoder_layers=12,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        image_backbone="resnet152",
        image_size=480,
        vocab_size=_OFA_SIZED_VOCAB,
        label_smoothing=0.1,
        cross_position_bias=True,
    ),
}


# OFA's GPT-2 BPE ids 4..50263 (BART's vocabulary without <s>, <pad>, </s>, <unk> and <mask>)
OFA_BPE_PIECES = 50_260


def _ofa_preset(d_model: int, encoder_layers: int, decoder_layers: int, heads: int, backbone: str, image_size: int):
    """The architecture of a published OFA checkpoint (`ofa_plus.convert_ofa` fills it with its weights):
    NormFormer, OFA's own patch LayerNorm and cross-attention position bias, a ResNet with plain
    BatchNorm up to stage 3, only the image adaptor and the token head (OFA has no audio or speech
    modules), and one text row per GPT-2 BPE piece of OFA's vocabulary."""
    return dict(
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        image_backbone=backbone,
        image_size=image_size,
        vocab_size=V.TEXT_OFFSET + OFA_BPE_PIECES,
        normformer=True,
        patch_layernorm_embedding=True,
        cross_position_bias=True,
        adaptors=["IMAGE"],
        output_kinds=["tokens"],
        label_smoothing=0.1,
    )


# OFA's sizes: tiny/medium/base/large/huge with ResNet-50/101/101/152/152 (OFA's "resnet50" etc. are
# torchvision's bottleneck nets cut after stage 3). The image size differs between checkpoints of
# one size (convert_ofa sets each checkpoint's): these are defaults.
PRESETS.update(
    {
        "ofa-tiny": _ofa_preset(256, 4, 4, 4, "resnet50", 256),
        "ofa-medium": _ofa_preset(512, 4, 4, 8, "resnet101", 256),
        "ofa-base": _ofa_preset(768, 6, 6, 12, "resnet101", 384),
        "ofa-large": _ofa_preset(1024, 12, 12, 16, "resnet152", 480),
        "ofa-huge": _ofa_preset(1280, 24, 12, 16, "resnet152", 480),
    }
)

IMAGE_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v2")

# A real-valued setting may be written as an int (``tts_f_min=80``, or YAML's ``init_std=1``).
Number = float | int
# Mel statistics: one value for all bins or one per bin; a tuple is stored as a list (JSON).
MelStat = Number | list[Number] | tuple[Number, ...] | None


def image_grid_size(image_size: int, backbone_stages: int) -> int:
    """Patches per side of the image grid: the backbone up to stage ``s`` has stride ``2 ** (s + 1)``
    (480 px, ResNet stages 1-3 -> stride 16 -> 30)."""
    return image_size // 2 ** (backbone_stages + 1)


@dataclass(frozen=True)
class MelSettings:
    """How waveforms become mel targets and back; mirrors the model config's ``tts_*`` fields."""

    sampling_rate: int = 16000
    num_mel_bins: int = 80
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    f_min: float = 80.0
    f_max: float = 7600.0
    log_floor: float = 1e-5
    mel_mean: float | tuple[float, ...] | None = None
    mel_std: float | tuple[float, ...] | None = None
    frames_per_step: int = 2
    max_frames: int = 1000

    @classmethod
    def from_config(cls, config) -> "MelSettings":
        return cls.from_dict({f.name: getattr(config, f"tts_{f.name}") for f in dataclasses.fields(cls)})

    @classmethod
    def from_dict(cls, values: dict | None) -> "MelSettings":
        values = dict(values or {})
        for key in ("mel_mean", "mel_std"):  # JSON gives lists; keep the settings hashable
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TTS settings {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


_MEL = MelSettings()  # the config's tts_* defaults for the mel analysis


@strict
class OFAPlusConfig(PreTrainedConfig):
    r"""Configuration of [`OFAPlusModel`] / [`OFAPlusForConditionalGeneration`].

    The transformer follows OFA: pre-LayerNorm layers with NormFormer's extra LayerNorms and head
    scales, positions given only as attention biases (absolute positions projected to a Q.K bias,
    plus per-modality relative biases: 1-D log buckets for text, 2-D for image patches), and
    input/output embeddings tied over the unified vocabulary of `ofa_plus.vocabulary`.

    ``adaptors`` lists the non-text input modalities whose adaptors the model builds (in this order)
    and ``output_kinds`` the output kinds whose heads it builds; "tokens" is always one of them.

    Audio inputs: ``audio_feature_size`` filterbank bins go through `AudioAdaptor` (4x subsampling,
    ``audio_conv_channels``); ``ctc_weight`` weighs the phone CTC loss that ASR tasks with
    ``preprocess=text_phone`` add on the encoder's audio states.

    ``image_backbone_pretrained`` marks a backbone whose weights come from an ImageNet checkpoint
    (`ImageAdaptor.load_backbone_weights`): its BatchNorm statistics stay fixed and pixels are
    renormalised to ImageNet's mean and std before it.

    Text-to-speech (AUDIO targets, `ofa_plus.modalities.audio_target`): 80-bin natural-log mel power
    frames of 16 kHz audio, ``tts_n_fft``/``tts_win_length``/``tts_hop_length`` = 1024/1024/256 samples
    (64 ms windows every 16 ms: OFA's sample counts, kept at 16 kHz as SpeechT5 does; the coarser hop
    than OFA's 11.6 ms gives fewer frames, so shorter decoder sequences), 80-7600 Hz (below 80 Hz is
    hum, above 7.6 kHz the band edge at the 8 kHz Nyquist); these defaults are `MelSettings`'s. The
    decoder emits ``tts_frames_per_step`` frames per step (Tacotron's reduction factor), at most
    ``tts_max_frames`` per utterance; ``tts_mel_mean``/``tts_mel_std`` (optional, one value or one per
    bin) normalise the targets. A Tacotron prenet (``tts_prenet_dim``, dropout ``tts_prenet_dropout``,
    kept on in inference) embeds the previous frame; a ``tts_postnet_layers``-layer conv post-net
    refines the mels; generation stops when sigmoid(stop logit) > ``tts_stop_threshold``.

    A value of the wrong type raises huggingface_hub's ``StrictDataclassFieldValidationError``; values
    that do not fit together raise ``StrictDataclassClassValidationError``, whose message names the
    ``validate_*`` method and carries the ValueError that explains the problem.

    ``patch_layernorm_embedding`` and ``cross_position_bias`` add two modules of OFA; the ``ofa-*``
    presets (the published OFA sizes, for `ofa_plus.convert_ofa`) turn both on, the other presets
    the cross-attention position bias. Both are off in a bare config, as in models saved before them.

    Use `OFAPlusConfig.from_preset("tiny" | "base" | "large" | "ofa-tiny" | ..., **overrides)`.
    """

    model_type = "ofa_plus"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "encoder_attention_heads",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = V.TEXT_OFFSET + 8_000
    d_model: int = 256
    encoder_layers: int = 4
    decoder_layers: int = 4
    encoder_attention_heads: int = 4
    decoder_attention_heads: int = 4
    encoder_ffn_dim: int = 1024
    decoder_ffn_dim: int = 1024
    activation_function: str = "gelu"
    dropout: Number = 0.1
    attention_dropout: Number = 0.0
    activation_dropout: Number = 0.0
    drop_path_rate: Number = 0.0
    max_positions: int = 1024
    token_bucket_size: int = 256
    image_bucket_size: int = 42
    attn_scale_factor: Number = 2.0
    normformer: bool = True
    # OFA's own LayerNorm for image patches (else they share layernorm_embedding with text); on in the
    # ofa-* presets, off for models saved before it existed
    patch_layernorm_embedding: bool = False
    # OFA's absolute position bias in every cross-attention: decoder positions against the encoder's
    # LayerNorm'd text/image positions; on in every preset, off for models saved before it existed
    cross_position_bias: bool = False
    image_backbone: str = "resnet18"
    image_backbone_stages: int = 3
    image_backbone_pretrained: bool = False
    image_size: int = 128
    num_bins: int = V.NUM_BINS
    # of the token loss; 0 (plain cross-entropy, as in transformers) unless set; the presets train with 0.1
    label_smoothing: Number = 0.0
    # what a target's softmax ranges over, in the training loss and in free generation: "full" (the
    # whole vocabulary) or "modality" (only the ids its target slots' modalities can produce, plus EOS:
    # text pieces for TEXT, location bins for BOX, a closed set's candidate tokens). The tiny preset,
    # trained from scratch, uses "modality"; models saved before this field load as "full".
    target_vocab: str = "full"
    init_std: Number = 0.02
    image_token_id: int = V.IMAGE_ID
    audio_token_id: int = V.AUDIO_ID
    audio_feature_size: int = 80  # mel bins of the audio feature extractor
    audio_conv_channels: int = 256  # channels of AudioAdaptor's subsampling convolutions
    ctc_weight: Number = 0.3  # loss = CE + ctc_weight * phone CTC (rows with ctc_labels)
    bin_token_offset: int = V.BIN_OFFSET
    pad_token_id: int | None = V.PAD_ID
    bos_token_id: int | None = V.BOS_ID
    eos_token_id: int | list[int] | None = V.EOS_ID
    decoder_start_token_id: int | None = V.BOS_ID
    vocabulary_layout_version: int = V.LAYOUT_VERSION
    is_encoder_decoder: bool = True
    use_cache: bool = True
    tie_word_embeddings: bool = True
    # the cards a trained model learned (TaskCard.to_dict()), by name; None is stored as []
    task_cards: list[dict] | None = None
    # Models saved before these two fields existed load with these defaults, which is what they built.
    adaptors: list[str] = field(default_factory=lambda: ["IMAGE", "AUDIO"])
    output_kinds: list[str] = field(default_factory=lambda: ["tokens", "speech"])
    tts_sampling_rate: int = _MEL.sampling_rate
    tts_num_mel_bins: int = _MEL.num_mel_bins
    tts_n_fft: int = _MEL.n_fft
    tts_win_length: int = _MEL.win_length
    tts_hop_length: int = _MEL.hop_length
    tts_f_min: Number = _MEL.f_min
    tts_f_max: Number = _MEL.f_max
    tts_log_floor: Number = _MEL.log_floor
    tts_mel_mean: MelStat = _MEL.mel_mean
    tts_mel_std: MelStat = _MEL.mel_std
    tts_frames_per_step: int = _MEL.frames_per_step
    tts_max_frames: int = _MEL.max_frames
    tts_prenet_dim: int = 256
    tts_prenet_dropout: Number = 0.5
    tts_postnet_layers: int = 5
    tts_postnet_channels: int = 256
    tts_postnet_kernel: int = 5
    tts_stop_threshold: Number = 0.5
    tts_stop_pos_weight: Number = 5.0

    def __post_init__(self, **kwargs):
        if self.task_cards is None:
            self.task_cards = []
        for name in ("tts_mel_mean", "tts_mel_std"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        for heads, name in ((self.encoder_attention_heads, "encoder"), (self.decoder_attention_heads, "decoder")):
            if self.d_model % heads:
                raise ValueError(f"d_model {self.d_model} is not divisible by {name}_attention_heads {heads}")

    def validate_image(self):
        if self.image_backbone not in IMAGE_BACKBONES:
            raise ValueError(f"image_backbone must be one of {IMAGE_BACKBONES}, got {self.image_backbone!r}")
        if not 1 <= self.image_backbone_stages <= 4:
            raise ValueError(
                f"image_backbone_stages must be 1..4 (stride 4, 8, 16, 32), got {self.image_backbone_stages}"
            )
        stride = 2 ** (self.image_backbone_stages + 1)
        if self.image_size % stride:
            raise ValueError(f"image_size {self.image_size} must be a multiple of the backbone stride {stride}")
        grid = self.image_grid_size
        if grid > self.image_bucket_size:
            raise ValueError(
                f"image_size {self.image_size} gives a {grid}x{grid} patch grid, "
                f"larger than image_bucket_size={self.image_bucket_size}"
            )

    def validate_bins(self):
        # BOX coordinates use the first num_bins ids of the vocabulary's fixed location-bin range
        if not 2 <= self.num_bins <= V.NUM_BINS:
            raise ValueError(f"num_bins must be 2..{V.NUM_BINS} (the vocabulary's location bins), got {self.num_bins}")

    def validate_target_vocab(self):
        if self.target_vocab not in ("full", "modality"):
            raise ValueError(f'target_vocab must be "full" or "modality", got {self.target_vocab!r}')

    def validate_audio(self):
        if self.audio_feature_size < 7:
            raise ValueError(
                f"audio_feature_size {self.audio_feature_size} is too small for 4x subsampling (>= 7 bins)"
            )

    def validate_vocabulary(self):
        if self.vocab_size < V.TEXT_OFFSET:
            raise ValueError(f"vocab_size {self.vocab_size} is smaller than the reserved ranges ({V.TEXT_OFFSET} ids)")
        if self.vocabulary_layout_version != V.LAYOUT_VERSION:
            raise ValueError(
                f"checkpoint uses vocabulary layout v{self.vocabulary_layout_version}, "
                f"this ofa_plus has v{V.LAYOUT_VERSION}"
            )

    def validate_speech(self):
        if not 0 < self.tts_f_min < self.tts_f_max <= self.tts_sampling_rate / 2:
            raise ValueError(
                f"need 0 < tts_f_min < tts_f_max <= tts_sampling_rate / 2, got {self.tts_f_min}, "
                f"{self.tts_f_max}, {self.tts_sampling_rate}"
            )
        if self.tts_win_length > self.tts_n_fft:
            raise ValueError(f"tts_win_length {self.tts_win_length} is longer than tts_n_fft {self.tts_n_fft}")
        if self.tts_postnet_layers < 2 or self.tts_postnet_kernel % 2 == 0:
            raise ValueError(
                f"the post-net needs >= 2 layers and an odd kernel, got {self.tts_postnet_layers}, "
                f"{self.tts_postnet_kernel}"
            )
        if -(-self.tts_max_frames // self.tts_frames_per_step) > self.max_positions:
            raise ValueError(
                f"tts_max_frames={self.tts_max_frames} at {self.tts_frames_per_step} frames per step "
                f"needs more decoder steps than max_positions={self.max_positions}"
            )
        for name in ("tts_mel_mean", "tts_mel_std"):
            stat = getattr(self, name)
            if isinstance(stat, (list, tuple)) and len(stat) != self.tts_num_mel_bins:
                raise ValueError(f"{name} has {len(stat)} values for {self.tts_num_mel_bins} mel bins")

    def validate_modalities(self):
        for name in ("adaptors", "output_kinds"):
            values = getattr(self, name)
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"{name} lists {repeated} more than once: {values}")
        if "tokens" not in self.output_kinds:
            raise ValueError(
                f"output_kinds must contain 'tokens' (the token head is always built), got {self.output_kinds}"
            )

    @property
    def image_grid_size(self) -> int:
        """Patches per side of the image grid (see the module function `image_grid_size`)."""
        return image_grid_size(self.image_size, self.image_backbone_stages)

    @property
    def image_tokens(self) -> int:
        return self.image_grid_size**2

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "OFAPlusConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**copy.deepcopy(PRESETS[name]), **overrides})
