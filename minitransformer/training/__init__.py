"""Training: the one loop (`train`), batching with dynamic padding, the memory model, the benchmark.

    from minitransformer.training import TrainConfig, train, evaluate, encode_classification
"""

from .batching import EncodedDataset, encode_classification, encode_lm, make_loader, pad_batch
from .env import is_quick, show_progress
from .train import History, TrainConfig, default_loss, evaluate, flush_denormal, lr_factor, train, training_memory

__all__ = ["TrainConfig", "History", "train", "evaluate", "lr_factor", "default_loss", "flush_denormal",
           "training_memory", "EncodedDataset", "encode_classification", "encode_lm", "make_loader", "pad_batch",
           "is_quick", "show_progress"]
