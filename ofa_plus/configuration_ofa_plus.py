"""OFA+ configuration: one shared encoder-decoder in OFA's style, plus per-modality adaptor settings."""

from __future__ import annotations

import copy

from transformers import PreTrainedConfig

from . import vocabulary as V

# vocab_size of base/large leaves room for a 50k-piece text vocabulary, like OFA's GPT-2 BPE
# (OFA's own table: 50,265 BPE + 1,000 bins + 8,192 codes = 59,457 rows).
_OFA_SIZED_VOCAB = V.TEXT_OFFSET + 50_048

PRESETS: dict[str, dict] = {
    # CPU tests and the default run: OFA's own "tiny" transformer (256 d, 4+4 layers, 4 heads)
    # with a ResNet-18 stem and small images. Without NormFormer's extra LayerNorms: trained from
    # scratch for minutes, the LayerNorm after cross-attention keeps the decoder from using the
    # encoder (a tiny model could not even memorise 8 examples); plain pre-LN learns at once.
    # Initialised with std d_model ** -0.5 rather than OFA's 0.02: at 256 d, 0.02 leaves the decoder
    # almost blind to the encoder at the start (MNIST stayed at chance for 300 steps; 52% with this).
    "tiny": dict(
        d_model=256, encoder_layers=4, decoder_layers=4, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=1024, decoder_ffn_dim=1024, image_backbone="resnet18", image_size=128,
        vocab_size=V.TEXT_OFFSET + 8_000, normformer=False, init_std=256**-0.5, audio_conv_channels=64,
    ),
    # OFA-base: 768 d, 6+6 layers, 12 heads, ResNet-101 up to stage 3, 480 px -> 30x30 patches.
    "base": dict(
        d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12, decoder_attention_heads=12,
        encoder_ffn_dim=3072, decoder_ffn_dim=3072, image_backbone="resnet101", image_size=480,
        vocab_size=_OFA_SIZED_VOCAB,
    ),
    # OFA-large: 1024 d, 12+12 layers, 16 heads, ResNet-152 up to stage 3.
    "large": dict(
        d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16, decoder_attention_heads=16,
        encoder_ffn_dim=4096, decoder_ffn_dim=4096, image_backbone="resnet152", image_size=480,
        vocab_size=_OFA_SIZED_VOCAB,
    ),
}

IMAGE_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v2")


class OFAPlusConfig(PreTrainedConfig):
    r"""Configuration of [`OFAPlusModel`] / [`OFAPlusForConditionalGeneration`].

    The transformer follows OFA: pre-LayerNorm layers with NormFormer's extra LayerNorms and head
    scales, positions given only as attention biases (absolute positions projected to a Q.K bias,
    plus per-modality relative biases: 1-D log buckets for text, 2-D for image patches), and
    input/output embeddings tied over the unified vocabulary of `ofa_plus.vocabulary`.

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
    hum, above 7.6 kHz the band edge at the 8 kHz Nyquist). The decoder emits
    ``tts_frames_per_step`` frames per step (Tacotron's reduction factor), at most ``tts_max_frames``
    per utterance; ``tts_mel_mean``/``tts_mel_std`` (optional, one value or one per bin) normalise
    the targets. A Tacotron prenet (``tts_prenet_dim``, dropout ``tts_prenet_dropout``, kept on in
    inference) embeds the previous frame; a ``tts_postnet_layers``-layer conv post-net refines the
    mels; generation stops when sigmoid(stop logit) > ``tts_stop_threshold``.

    Use `OFAPlusConfig.from_preset("tiny" | "base" | "large", **overrides)`.
    """

    model_type = "ofa_plus"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "encoder_attention_heads",
        "num_hidden_layers": "encoder_layers",
    }

    def __init__(
        self,
        vocab_size: int = V.TEXT_OFFSET + 8_000,
        d_model: int = 256,
        encoder_layers: int = 4,
        decoder_layers: int = 4,
        encoder_attention_heads: int = 4,
        decoder_attention_heads: int = 4,
        encoder_ffn_dim: int = 1024,
        decoder_ffn_dim: int = 1024,
        activation_function: str = "gelu",
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        max_positions: int = 1024,
        token_bucket_size: int = 256,
        image_bucket_size: int = 42,
        attn_scale_factor: float = 2.0,
        normformer: bool = True,
        image_backbone: str = "resnet18",
        image_backbone_stages: int = 3,
        image_backbone_pretrained: bool = False,
        image_size: int = 128,
        num_bins: int = V.NUM_BINS,
        label_smoothing: float = 0.1,
        init_std: float = 0.02,
        image_token_id: int = V.IMAGE_ID,
        audio_token_id: int = V.AUDIO_ID,
        audio_feature_size: int = 80,
        audio_conv_channels: int = 256,
        ctc_weight: float = 0.3,
        bin_token_offset: int = V.BIN_OFFSET,
        pad_token_id: int = V.PAD_ID,
        bos_token_id: int = V.BOS_ID,
        eos_token_id: int = V.EOS_ID,
        decoder_start_token_id: int = V.BOS_ID,
        vocabulary_layout_version: int = V.LAYOUT_VERSION,
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        task_cards: list[dict] | None = None,
        tts_sampling_rate: int = 16000,
        tts_num_mel_bins: int = 80,
        tts_n_fft: int = 1024,
        tts_win_length: int = 1024,
        tts_hop_length: int = 256,
        tts_f_min: float = 80.0,
        tts_f_max: float = 7600.0,
        tts_log_floor: float = 1e-5,
        tts_mel_mean: float | list[float] | None = None,
        tts_mel_std: float | list[float] | None = None,
        tts_frames_per_step: int = 2,
        tts_max_frames: int = 1000,
        tts_prenet_dim: int = 256,
        tts_prenet_dropout: float = 0.5,
        tts_postnet_layers: int = 5,
        tts_postnet_channels: int = 256,
        tts_postnet_kernel: int = 5,
        tts_stop_threshold: float = 0.5,
        tts_stop_pos_weight: float = 5.0,
        adaptors: list[str] | None = None,
        output_kinds: list[str] | None = None,
        **kwargs,
    ):
        self.adaptors = list(adaptors) if adaptors is not None else ["IMAGE", "AUDIO"]
        self.output_kinds = list(output_kinds) if output_kinds is not None else ["tokens", "speech"]
        if image_backbone not in IMAGE_BACKBONES:
            raise ValueError(f"image_backbone must be one of {IMAGE_BACKBONES}, got {image_backbone!r}")
        if not 1 <= image_backbone_stages <= 4:
            raise ValueError(f"image_backbone_stages must be 1..4 (stride 4, 8, 16, 32), got {image_backbone_stages}")
        stride = 2 ** (image_backbone_stages + 1)
        if image_size % stride:
            raise ValueError(f"image_size {image_size} must be a multiple of the backbone stride {stride}")
        if image_size // stride > image_bucket_size:
            raise ValueError(f"image_size {image_size} gives a {image_size // stride}x{image_size // stride} patch grid, "
                             f"larger than image_bucket_size={image_bucket_size}")
        for heads, name in ((encoder_attention_heads, "encoder"), (decoder_attention_heads, "decoder")):
            if d_model % heads:
                raise ValueError(f"d_model {d_model} is not divisible by {name}_attention_heads {heads}")
        if audio_feature_size < 7:
            raise ValueError(f"audio_feature_size {audio_feature_size} is too small for 4x subsampling (>= 7 bins)")
        if vocab_size < V.TEXT_OFFSET:
            raise ValueError(f"vocab_size {vocab_size} is smaller than the reserved ranges ({V.TEXT_OFFSET} ids)")
        if vocabulary_layout_version != V.LAYOUT_VERSION:
            raise ValueError(f"checkpoint uses vocabulary layout v{vocabulary_layout_version}, "
                             f"this ofa_plus has v{V.LAYOUT_VERSION}")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.encoder_attention_heads = encoder_attention_heads
        self.decoder_attention_heads = decoder_attention_heads
        self.encoder_ffn_dim = encoder_ffn_dim
        self.decoder_ffn_dim = decoder_ffn_dim
        self.activation_function = activation_function
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.drop_path_rate = drop_path_rate
        self.max_positions = max_positions
        self.token_bucket_size = token_bucket_size
        self.image_bucket_size = image_bucket_size
        self.attn_scale_factor = attn_scale_factor
        self.normformer = normformer
        self.image_backbone = image_backbone
        self.image_backbone_stages = image_backbone_stages
        self.image_backbone_pretrained = image_backbone_pretrained
        self.image_size = image_size
        self.num_bins = num_bins
        self.label_smoothing = label_smoothing
        self.init_std = init_std
        self.image_token_id = image_token_id
        self.audio_token_id = audio_token_id
        self.audio_feature_size = audio_feature_size  # mel bins of the audio feature extractor
        self.audio_conv_channels = audio_conv_channels  # channels of AudioAdaptor's subsampling convolutions
        self.ctc_weight = ctc_weight  # loss = CE + ctc_weight * phone CTC (rows with ctc_labels)
        self.bin_token_offset = bin_token_offset
        self.vocabulary_layout_version = vocabulary_layout_version
        self.decoder_start_token_id = decoder_start_token_id
        self.use_cache = use_cache
        self.task_cards = task_cards or []  # the cards a trained model learned (TaskCard.to_dict()), by name
        if not 0 < tts_f_min < tts_f_max <= tts_sampling_rate / 2:
            raise ValueError(f"need 0 < tts_f_min < tts_f_max <= tts_sampling_rate / 2, got {tts_f_min}, {tts_f_max}, "
                             f"{tts_sampling_rate}")
        if tts_win_length > tts_n_fft:
            raise ValueError(f"tts_win_length {tts_win_length} is longer than tts_n_fft {tts_n_fft}")
        if tts_postnet_layers < 2 or tts_postnet_kernel % 2 == 0:
            raise ValueError(f"the post-net needs >= 2 layers and an odd kernel, got {tts_postnet_layers}, "
                             f"{tts_postnet_kernel}")
        if -(-tts_max_frames // tts_frames_per_step) > max_positions:
            raise ValueError(f"tts_max_frames={tts_max_frames} at {tts_frames_per_step} frames per step needs more "
                             f"decoder steps than max_positions={max_positions}")
        for name, stat in (("tts_mel_mean", tts_mel_mean), ("tts_mel_std", tts_mel_std)):
            if isinstance(stat, (list, tuple)) and len(stat) != tts_num_mel_bins:
                raise ValueError(f"{name} has {len(stat)} values for {tts_num_mel_bins} mel bins")
        self.tts_sampling_rate = tts_sampling_rate
        self.tts_num_mel_bins = tts_num_mel_bins
        self.tts_n_fft = tts_n_fft
        self.tts_win_length = tts_win_length
        self.tts_hop_length = tts_hop_length
        self.tts_f_min = tts_f_min
        self.tts_f_max = tts_f_max
        self.tts_log_floor = tts_log_floor
        self.tts_mel_mean = list(tts_mel_mean) if isinstance(tts_mel_mean, (list, tuple)) else tts_mel_mean
        self.tts_mel_std = list(tts_mel_std) if isinstance(tts_mel_std, (list, tuple)) else tts_mel_std
        self.tts_frames_per_step = tts_frames_per_step
        self.tts_max_frames = tts_max_frames
        self.tts_prenet_dim = tts_prenet_dim
        self.tts_prenet_dropout = tts_prenet_dropout
        self.tts_postnet_layers = tts_postnet_layers
        self.tts_postnet_channels = tts_postnet_channels
        self.tts_postnet_kernel = tts_postnet_kernel
        self.tts_stop_threshold = tts_stop_threshold
        self.tts_stop_pos_weight = tts_stop_pos_weight
        super().__init__(
            pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
            is_encoder_decoder=is_encoder_decoder, tie_word_embeddings=tie_word_embeddings, **kwargs,
        )

    @property
    def image_grid_size(self) -> int:
        """Patches per side of the image grid (480 px, ResNet stages 1-3 -> stride 16 -> 30)."""
        return self.image_size // 2 ** (self.image_backbone_stages + 1)

    @property
    def image_tokens(self) -> int:
        return self.image_grid_size**2

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "OFAPlusConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**copy.deepcopy(PRESETS[name]), **overrides})
