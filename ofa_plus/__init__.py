"""ofa_plus: generalist multi-modal encoder-decoder models (OFA+) native in the Hugging Face ecosystem.

Importing the package registers the config, model, tokenizer, image processor and processor with
the transformers Auto classes, so saved checkpoints load with `AutoModelForSeq2SeqLM` /
`AutoProcessor` after `import ofa_plus`, and the ``pipeline("multimodal-instruction")`` task
(alias ``"ofa-plus"``, see `ofa_plus.pipeline`).
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForSeq2SeqLM,
    AutoProcessor,
    AutoTokenizer,
)

from .configuration_ofa_plus import PRESETS, OFAPlusConfig
from .generation import DecodingConstraints
from .instruction import Instruction, InstructionError, parse_instruction
from .modalities import MODALITIES, Modality, ModalityAdaptor, get_modality, register_modality
from .modalities.audio import OFAPlusAudioFeatureExtractor, load_audio
from .modalities.image import OFAPlusImageProcessor, OFAPlusImageProcessorPil
from .modeling_ofa_plus import OFAPlusForConditionalGeneration, OFAPlusModel, OFAPlusPreTrainedModel
from .outputs import OUTPUT_KINDS, OutputKind, get_output_kind, register_output_kind
from .pipeline import OFAPlusPipeline
from .pipeline import register as _register_pipeline
from .plan import TaskPlan, compile_plan
from .processing_ofa_plus import OFAPlusBatch, OFAPlusProcessor
from .task_card import CardError, TaskCard, load_cards
from .tokenization_ofa_plus import OFAPlusTokenizer
from .tokenization_ofa_plus_bpe import OFAPlusBPETokenizer
from .tokenizer_training import train_tokenizer

AutoConfig.register(OFAPlusConfig.model_type, OFAPlusConfig, exist_ok=True)
AutoModel.register(OFAPlusConfig, OFAPlusModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(OFAPlusConfig, OFAPlusForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(OFAPlusConfig, OFAPlusForConditionalGeneration, exist_ok=True)
# OFAPlusTokenizer is the config's tokenizer; naming OFAPlusBPETokenizer here too registers it by class
# name, which is how AutoTokenizer finds it from a saved tokenizer_config.json (it is nobody's "fast" form)
AutoTokenizer.register(
    OFAPlusConfig, tokenizer_class=OFAPlusTokenizer, slow_tokenizer_class=OFAPlusBPETokenizer, exist_ok=True
)
AutoImageProcessor.register(
    OFAPlusConfig,
    image_processor_classes={"torchvision": OFAPlusImageProcessor, "pil": OFAPlusImageProcessorPil},
    exist_ok=True,
)
AutoFeatureExtractor.register(OFAPlusConfig, OFAPlusAudioFeatureExtractor, exist_ok=True)
AutoProcessor.register(OFAPlusConfig, OFAPlusProcessor, exist_ok=True)
_register_pipeline()

__version__ = "0.1.0"
__all__ = [
    "CardError",
    "DecodingConstraints",
    "Instruction",
    "InstructionError",
    "MODALITIES",
    "Modality",
    "ModalityAdaptor",
    "OUTPUT_KINDS",
    "OutputKind",
    "OFAPlusAudioFeatureExtractor",
    "OFAPlusBatch",
    "OFAPlusConfig",
    "OFAPlusForConditionalGeneration",
    "OFAPlusImageProcessor",
    "OFAPlusImageProcessorPil",
    "OFAPlusModel",
    "OFAPlusPipeline",
    "OFAPlusPreTrainedModel",
    "OFAPlusProcessor",
    "OFAPlusTokenizer",
    "OFAPlusBPETokenizer",
    "PRESETS",
    "TaskCard",
    "TaskPlan",
    "compile_plan",
    "load_audio",
    "load_cards",
    "get_modality",
    "get_output_kind",
    "parse_instruction",
    "register_modality",
    "register_output_kind",
    "train_tokenizer",
]
