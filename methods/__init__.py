"""methods: one file per PEFT method, one contract (DESIGN.md §5).

    from methods import get_peft_model, BitFitConfig
    model = get_peft_model(base, BitFitConfig(task_type="SEQ_CLS"))

Importing the package registers every method in `METHODS` (name -> config class).
"""

from .adalora import AdaLoraConfig
from .adamix import AdaMixConfig
from .adapter_fusion import AdapterFusionConfig
from .adapters import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig
from .api.config import PeftConfig, TaskType
from .api.peft_model import PeftModel, expected_trainable_parameters, get_peft_model
from .api.registry import METHODS, get_method, register
from .baselines import FullFineTuningConfig, LinearProbeConfig
from .bitfit import BitFitConfig
from .ia3 import IA3Config
from .lora import LoraConfig
from .p_tuning import PromptEncoderConfig
from .p_tuning_v2 import PTuningV2Config
from .prefix_tuning import PrefixTuningConfig
from .prompt_tuning import PromptTuningConfig
from .qlora import QLoraConfig
from .random_subset import RandomSubsetConfig

__all__ = [
    "PeftConfig", "TaskType", "PeftModel", "get_peft_model", "expected_trainable_parameters",
    "METHODS", "get_method", "register",
    "FullFineTuningConfig", "LinearProbeConfig", "BitFitConfig", "RandomSubsetConfig",
    "LoraConfig", "AdaLoraConfig", "QLoraConfig", "IA3Config",
    "HoulsbyConfig", "PfeifferConfig", "ParallelAdapterConfig", "AdaMixConfig", "AdapterFusionConfig",
    "PromptTuningConfig", "PromptEncoderConfig", "PrefixTuningConfig", "PTuningV2Config",
]
