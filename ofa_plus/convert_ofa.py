"""Convert a published OFA checkpoint into an OFA+ model.

The source is a folder in the layout of the Hub's ``OFA-Sys/ofa-*`` and ModelScope's ``damo/ofa_*``
(English, ResNet) repositories: ``config.json``, ``pytorch_model.bin``, ``vocab.json`` and
``merges.txt``. Every size is read off the tensors (``config.json`` must agree); the image size comes
from ``--image-size``, else from ``patch_image_size`` in ``config.json`` or in ModelScope's
``configuration.json``. The result is an OFA+ model folder (``model.safetensors``) that
``AutoModelForSeq2SeqLM.from_pretrained`` loads, its outputs OFA's up to float rounding, with a
processor whose tokenizer is OFA's BPE (`OFAPlusBPETokenizer`, from the same vocab.json/merges.txt).

What the conversion does besides renaming (docs: the "Use OFA's published weights" README section):

* Token rows are permuted into OFA+'s vocabulary layout: specials, ``<code_i>`` and ``<bin_i>`` into
  their reserved ranges, the GPT-2 BPE pieces from ``vocab.json`` in id order from ``TEXT_OFFSET``.
  Reserved ids OFA has no row for (spare specials, phones) keep their initialisation and are saved in
  ``generation_config.suppress_tokens``, so decoding never picks them.
* Separate q/k/v projections are fused; relative-bias tables are reversed (OFA indexes them by q - k,
  OFA+ by k - q); position tables lose the rows OFA never looks up for text/box outputs.
* The decoder's image-code path (text-to-image) and the precomputed bucket buffers are dropped.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import vocabulary as V
from .configuration_ofa_plus import OFAPlusConfig

OFA_NUM_CODES = 8192  # OFA adds <code_0..8191> and then <bin_0..999> after the BPE vocabulary
OFA_NUM_BINS = 1000
# OFA's special pieces in vocab.json -> OFA+'s reserved ids
OFA_SPECIALS = {"<s>": V.BOS_ID, "<pad>": V.PAD_ID, "</s>": V.EOS_ID, "<unk>": V.UNK_ID, "<mask>": V.MASK_ID}
# OFA's "resnetN" is torchvision's bottleneck ResNet-N cut after stage 3: told apart by stage 3's blocks
RESNET_BY_STAGE3_BLOCKS = {6: "resnet50", 23: "resnet101", 36: "resnet152"}
# config.json settings OFA+ has no module for, with the value the conversion needs
UNSUPPORTED_SETTINGS = {
    "entangle_position_embedding": False,
    "scale_embedding": False,
    "use_ofasys": False,
    "share_attn_bias": False,
    "use_gamma_feature": False,
    "add_type_embedding": True,
    "layernorm_embedding": True,
    "encoder_normalize_before": True,
    "decoder_normalize_before": True,
}

# Tensors of OFA that OFA+ does not need, with the reason.
DROPPED = [
    (r"(encoder|decoder)\.(token|image)_rp_bucket", "bucket buffer, computed on the fly"),
    (r"decoder\.image_position_idx", "buffer of the image-code path"),
    (r"decoder\.(embed_image_positions|image_pos_ln|code_layernorm_embedding)\..*", "image-code path (text-to-image)"),
    (r"decoder\.image_rel_pos_table_list\.\d+\.weight", "image-code path (text-to-image)"),
    (r"decoder\.(embed_tokens|output_projection)\.weight", "tied to encoder.embed_tokens.weight"),
    (r"(encoder|decoder)\.version", "fairseq version stamp"),
]

# OFA name -> OFA+ name (under ``model.``) for tensors that only move.
RENAMES = [
    (r"encoder\.embed_images\.conv1\.(.*)", r"encoder.image_adaptor.backbone.0.\1"),
    (r"encoder\.embed_images\.bn1\.(.*)", r"encoder.image_adaptor.backbone.1.\1"),
    # stages 1-3 follow the stem's conv, bn, relu and max-pool in the adaptor's Sequential
    (r"encoder\.embed_images\.layer1\.(.*)", r"encoder.image_adaptor.backbone.4.\1"),
    (r"encoder\.embed_images\.layer2\.(.*)", r"encoder.image_adaptor.backbone.5.\1"),
    (r"encoder\.embed_images\.layer3\.(.*)", r"encoder.image_adaptor.backbone.6.\1"),
    (r"encoder\.image_proj\.(.*)", r"encoder.image_adaptor.proj.\1"),
    (r"encoder\.pos_([qk])_linear\.(.*)", r"encoder.absolute_bias.\1_linear.\2"),
    (r"decoder\.self_pos_([qk])_linear\.(.*)", r"decoder.absolute_bias.\1_linear.\2"),
    (r"decoder\.cross_pos_([qk])_linear\.(.*)", r"decoder.cross_absolute_bias.\1_linear.\2"),
    (r"(encoder|decoder)\.layers\.(\d+)\.(self|cross)_attn\.c_attn", r"\1.layers.\2.\3_attn.head_scale"),
    (
        r"(encoder|decoder)\.layers\.(\d+)\.(self|cross)_attn_mid_layer_norm\.(.*)",
        r"\1.layers.\2.\3_attn_post_norm.\4",
    ),
    (r"(encoder|decoder)\.layers\.(\d+)\.(fc1|fc2)\.(.*)", r"\1.layers.\2.ffn.\3.\4"),
    (r"(encoder|decoder)\.layers\.(\d+)\.ffn_layer_norm\.(.*)", r"\1.layers.\2.ffn.ffn_layernorm.\3"),
    (r"decoder\.layers\.(\d+)\.cross_attn\.q_proj\.(.*)", r"decoder.layers.\1.cross_attn.q_proj.\2"),
    (
        r"(encoder|decoder)\.layers\.(\d+)\.((self|cross)_attn\.out_proj|(self|cross)_attn_layer_norm"
        r"|final_layer_norm)\.(.*)",
        r"\g<0>",
    ),
    (
        r"encoder\.(type_embedding|layernorm_embedding|patch_layernorm_embedding|pos_ln|image_pos_ln|layer_norm)\..*",
        r"\g<0>",
    ),
    (r"decoder\.(layernorm_embedding|pos_ln|layer_norm)\..*", r"\g<0>"),
]


class OFACheckpointError(ValueError):
    """The source folder is not an OFA checkpoint this converter can read; the message names the file
    (and tensor) at fault."""


@dataclass
class ConversionReport:
    config: OFAPlusConfig
    converted: int = 0  # OFA tensors that went into the model
    dropped: dict[str, str] = field(default_factory=dict)  # OFA tensor -> why it was left out
    suppressed: list[int] = field(default_factory=list)  # OFA+ ids without an OFA row


def read_checkpoint(src: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, int]]:
    """(config.json, the tensors of pytorch_model.bin without a ``model.`` prefix, vocab.json)."""
    for name in ("config.json", "pytorch_model.bin", "vocab.json", "merges.txt"):
        if not (src / name).is_file():
            raise OFACheckpointError(
                f"{src / name}: missing (an OFA checkpoint folder has config.json, "
                "pytorch_model.bin, vocab.json and merges.txt)"
            )
    config, vocab = _read_json(src / "config.json"), _read_json(src / "vocab.json")
    path = src / "pytorch_model.bin"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise OFACheckpointError(f"{path}: cannot be read as a PyTorch checkpoint, truncated or damaged? ({err})")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a training checkpoint
        state = state["model"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise OFACheckpointError(f"{path}: not a state dict of tensors")
    state = {k.removeprefix("model."): v for k, v in state.items()}
    return config, state, vocab


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OFACheckpointError(f"{path}: not valid JSON ({err})")


def _tensor(state: dict, name: str, src: Path, dims: int | None = None) -> torch.Tensor:
    if name not in state:
        raise OFACheckpointError(f"{src / 'pytorch_model.bin'}: lacks tensor {name}")
    tensor = state[name]
    if dims is not None and tensor.dim() != dims:
        raise OFACheckpointError(
            f"{src / 'pytorch_model.bin'}: tensor {name} has shape {tuple(tensor.shape)}, expected {dims} dimensions"
        )
    return tensor


def _count(state: dict, pattern: str) -> int:
    return len({m[1] for k in state if (m := re.fullmatch(pattern, k))})


def build_config(ofa_config: dict, state: dict, vocab: dict, image_size: int | None, src: Path) -> OFAPlusConfig:
    """The OFA+ config of the checkpoint: sizes from its tensors, the rest from its config.json."""
    for key, needed in UNSUPPORTED_SETTINGS.items():
        if key in ofa_config and bool(ofa_config[key]) != needed:
            raise OFACheckpointError(
                f"{src / 'config.json'}: {key}={ofa_config[key]} is not supported (needs {needed})"
            )
    tokens = _tensor(state, "encoder.embed_tokens.weight", src, 2)
    d_model = tokens.shape[1]
    heads = [
        _tensor(state, f"{side}.token_rel_pos_table_list.0.weight", src, 2).shape[1] for side in ("encoder", "decoder")
    ]
    token_buckets = _tensor(state, "encoder.token_rel_pos_table_list.0.weight", src).shape[0]
    image_rows = _tensor(state, "encoder.embed_image_positions.weight", src, 2).shape[0]
    image_bucket_size = round((image_rows - 1) ** 0.5)
    stage3 = _count(state, r"encoder\.embed_images\.layer3\.(\d+)\..*")
    if stage3 not in RESNET_BY_STAGE3_BLOCKS:
        raise OFACheckpointError(
            f"{src / 'pytorch_model.bin'}: encoder.embed_images.layer3 has {stage3} blocks; OFA's ResNet-50/101/152 "
            f"have {sorted(RESNET_BY_STAGE3_BLOCKS)}"
        )
    normformer = "encoder.layers.0.self_attn.c_attn" in state
    sizes = dict(
        d_model=d_model,
        encoder_layers=_count(state, r"encoder\.layers\.(\d+)\..*"),
        decoder_layers=_count(state, r"decoder\.layers\.(\d+)\..*"),
        encoder_attention_heads=heads[0],
        decoder_attention_heads=heads[1],
        encoder_ffn_dim=_tensor(state, "encoder.layers.0.fc1.weight", src, 2).shape[0],
        decoder_ffn_dim=_tensor(state, "decoder.layers.0.fc1.weight", src, 2).shape[0],
        max_positions=_tensor(state, "encoder.embed_positions.weight", src, 2).shape[0] - 2,
        token_bucket_size=(token_buckets + 1) // 2,
        image_bucket_size=image_bucket_size,
        image_backbone=RESNET_BY_STAGE3_BLOCKS[stage3],
    )
    for key, value in sizes.items():  # config.json must describe the same model as the tensors
        if key in ofa_config and ofa_config[key] != value:
            raise OFACheckpointError(f"{src / 'config.json'}: {key}={ofa_config[key]}, but the tensors give {value}")
    if ofa_config.get("resnet_type", sizes["image_backbone"]) != sizes["image_backbone"]:
        raise OFACheckpointError(
            f"{src / 'config.json'}: resnet_type={ofa_config['resnet_type']}, but the tensors are a {sizes['image_backbone']}"
        )
    if image_size is None:
        image_size = _image_size(ofa_config, src)
    stride, largest = 16, 16 * sizes["image_bucket_size"]  # ResNet stages 1-3; OFA's image position table
    if not (0 < image_size <= largest and image_size % stride == 0):
        raise OFACheckpointError(
            f"image size {image_size}: must be a multiple of {stride} px up to {largest} px "
            f"(the checkpoint's {sizes['image_bucket_size']}x{sizes['image_bucket_size']} image positions)"
        )
    return OFAPlusConfig(
        **sizes,
        vocab_size=V.TEXT_OFFSET + _text_pieces(vocab, src),
        image_size=image_size,
        image_backbone_stages=3,
        image_backbone_pretrained=False,  # OFA's BatchNorm statistics and pixel normalisation as they are
        normformer=normformer,
        patch_layernorm_embedding="encoder.patch_layernorm_embedding.weight" in state,
        cross_position_bias="decoder.cross_pos_q_linear.weight" in state,
        attn_scale_factor=ofa_config.get("attn_scale_factor", 2.0),
        activation_function=ofa_config.get("activation_function", "gelu"),
        dropout=ofa_config.get("dropout", 0.1),
        attention_dropout=ofa_config.get("attention_dropout", 0.0),
        activation_dropout=ofa_config.get("activation_dropout", 0.0),
        drop_path_rate=ofa_config.get("encoder_drop_path_rate", 0.0),  # OFA+ has one rate for both stacks
        adaptors=["IMAGE"],
        output_kinds=["tokens"],
    )


def _image_size(ofa_config: dict, src: Path) -> int:
    if "patch_image_size" in ofa_config:
        return int(ofa_config["patch_image_size"])
    modelscope = src / "configuration.json"
    if modelscope.is_file():
        size = (_read_json(modelscope).get("model") or {}).get("patch_image_size")
        if size is not None:
            return int(size)
    raise OFACheckpointError(
        f"{src}: neither config.json nor configuration.json gives patch_image_size; pass --image-size, the size "
        "the checkpoint was trained at (OFA's scripts use 256 for tiny, 384, 480 or 512)"
    )


def _text_pieces(vocab: dict, src: Path) -> int:
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise OFACheckpointError(f"{src / 'vocab.json'}: ids are not 0..{len(ids) - 1}")
    missing = [piece for piece in OFA_SPECIALS if piece not in vocab]
    if missing:
        raise OFACheckpointError(f"{src / 'vocab.json'}: lacks the special piece(s) {missing}")
    return len(vocab) - len(OFA_SPECIALS)


def vocabulary_permutation(vocab: dict[str, int], rows: int, src: Path) -> torch.Tensor:
    """For each row of OFA's token table, its OFA+ id."""
    expected = len(vocab) + OFA_NUM_CODES + OFA_NUM_BINS
    if rows != expected:
        raise OFACheckpointError(
            f"{src / 'pytorch_model.bin'}: tensor encoder.embed_tokens.weight has {rows} rows, but vocab.json's "
            f"{len(vocab)} pieces + {OFA_NUM_CODES} codes + {OFA_NUM_BINS} bins make {expected}"
        )
    new_ids = torch.empty(rows, dtype=torch.long)
    text = (
        piece_id for piece, piece_id in sorted(vocab.items(), key=lambda item: item[1]) if piece not in OFA_SPECIALS
    )
    for rank, piece_id in enumerate(text):
        new_ids[piece_id] = V.TEXT_OFFSET + rank
    for piece, new_id in OFA_SPECIALS.items():
        new_ids[vocab[piece]] = new_id
    new_ids[len(vocab) : len(vocab) + OFA_NUM_CODES] = V.CODE_OFFSET + torch.arange(OFA_NUM_CODES)
    new_ids[len(vocab) + OFA_NUM_CODES :] = V.BIN_OFFSET + torch.arange(OFA_NUM_BINS)
    return new_ids


def convert_state_dict(
    state: dict[str, torch.Tensor],
    new_ids: torch.Tensor,
    config: OFAPlusConfig,
    target: dict[str, torch.Tensor],
    src: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """OFA tensors -> OFA+ tensors (keys of ``target``, the new model's state dict, whose token table
    gives the rows OFA has none for) and the dropped OFA tensors with the reason. ``new_ids``: the
    OFA+ id of each OFA token row (`vocabulary_permutation`)."""
    out, dropped, used = {}, {}, set()

    def take(name: str) -> torch.Tensor:
        used.add(name)
        return _tensor(state, name, src)

    table = take("encoder.embed_tokens.weight")
    shared = target["model.shared.weight"].clone()
    shared[new_ids] = table.to(shared.dtype)
    out["model.shared.weight"] = shared
    for name in ("decoder.embed_tokens.weight", "decoder.output_projection.weight"):
        if name in state and not torch.equal(state[name], table):
            raise OFACheckpointError(f"{src / 'pytorch_model.bin'}: {name} differs from encoder.embed_tokens.weight")

    for side in ("encoder", "decoder"):
        out[f"model.{side}.embed_positions.weight"] = take(f"{side}.embed_positions.weight")[: config.max_positions]
    image_positions = take("encoder.embed_image_positions.weight")
    out["model.encoder.embed_image_positions.weight"] = image_positions[1:]  # row 0: the code path's

    span = 2 * config.image_bucket_size - 1
    for i in range(config.encoder_layers):
        token = take(f"encoder.token_rel_pos_table_list.{i}.weight")
        image = take(f"encoder.image_rel_pos_table_list.{i}.weight")
        if image.shape[0] != span**2 + 3:
            raise OFACheckpointError(
                f"{src / 'pytorch_model.bin'}: tensor encoder.image_rel_pos_table_list.{i}.weight has "
                f"{image.shape[0]} rows, expected {span**2 + 3}"
            )
        # OFA looks up q - k, OFA+ k - q: reversed tables; the 3 rows after the offsets are OFA's unused "cls" rows
        out[f"model.encoder.relative_bias.{i}.weight"] = torch.cat([token.flip(0), image[: span**2].flip(0)])
    for i in range(config.decoder_layers):
        out[f"model.decoder.relative_bias.{i}.weight"] = take(f"decoder.token_rel_pos_table_list.{i}.weight").flip(0)

    fused = [("encoder", "self_attn", "qkv_proj", "qkv"), ("decoder", "self_attn", "qkv_proj", "qkv")]
    fused.append(("decoder", "cross_attn", "kv_proj", "kv"))
    for side, attn, name, parts in fused:
        for i in range(getattr(config, f"{side}_layers")):
            for kind in ("weight", "bias"):
                prefix = f"{side}.layers.{i}.{attn}"
                out[f"model.{prefix}.{name}.{kind}"] = torch.cat([take(f"{prefix}.{p}_proj.{kind}") for p in parts])

    for key in state:
        if key in used:
            continue
        reason = next((why for pattern, why in DROPPED if re.fullmatch(pattern, key)), None)
        if reason is not None:
            dropped[key] = reason
            continue
        new_key = next((re.sub(p, r, key) for p, r in RENAMES if re.fullmatch(p, key)), None)
        if new_key is None:
            raise OFACheckpointError(
                f"{src / 'pytorch_model.bin'}: unknown tensor {key} (not an OFA checkpoint this converter reads)"
            )
        out[f"model.{new_key}"] = state[key]

    for key, tensor in out.items():
        if key not in target:
            raise OFACheckpointError(f"{src / 'pytorch_model.bin'}: tensor for {key} has no place in the OFA+ model")
        if tensor.shape != target[key].shape:
            raise OFACheckpointError(
                f"{src / 'pytorch_model.bin'}: the tensor for {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(target[key].shape)}"
            )
    return out, dropped


def convert_ofa(src: str | Path, dst: str | Path, image_size: int | None = None) -> ConversionReport:
    """Convert the OFA checkpoint folder ``src`` into an OFA+ model folder ``dst`` (see the module docs)."""
    from .modeling_ofa_plus import OFAPlusForConditionalGeneration  # noqa: PLC0415 (torch-heavy)
    from .processing_ofa_plus import OFAPlusProcessor  # noqa: PLC0415
    from .tokenization_ofa_plus_bpe import OFAPlusBPETokenizer  # noqa: PLC0415

    src, dst = Path(src), Path(dst)
    ofa_config, state, vocab = read_checkpoint(src)
    config = build_config(ofa_config, state, vocab, image_size, src)
    new_ids = vocabulary_permutation(vocab, state["encoder.embed_tokens.weight"].shape[0], src)
    model = OFAPlusForConditionalGeneration(config).eval()
    target = model.state_dict()
    converted, dropped = convert_state_dict(state, new_ids, config, target, src)
    # what the checkpoint does not fill: the tied copies of the token table and the zero bias between
    # segments (OFA+'s own, constant), nothing else
    tied = set(model.all_tied_weights_keys) | {
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "model.encoder.relative_bias_padding",
    }
    missing = sorted(set(target) - set(converted) - tied)
    if missing:
        raise OFACheckpointError(
            f"{src / 'pytorch_model.bin'}: lacks the tensors for {missing[:5]} ({len(missing)} in all)"
        )
    model.load_state_dict(converted, strict=False)
    suppressed = sorted(set(range(V.TEXT_OFFSET)) - set(new_ids.tolist()))
    model.generation_config.suppress_tokens = suppressed
    model.save_pretrained(dst)
    tokenizer = OFAPlusBPETokenizer(src / "vocab.json", src / "merges.txt")
    OFAPlusProcessor.for_config(config, tokenizer).save_pretrained(dst)
    return ConversionReport(config, len(state) - len(dropped), dropped, suppressed)
