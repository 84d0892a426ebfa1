"""minitransformer: a handwritten Transformer, BERT and GPT built for parameter-efficient fine-tuning.

Read in this order: config.py -> attention.py -> blocks.py -> core.py -> bert.py / gpt.py / seq2seq.py
-> hf_weights.py. Every model has the same three extension points (`inputs_embeds`, `attention_mask`,
`past_key_values`) and the same module names (README: "Module names").
"""

from .attention import MultiHeadAttention
from .bert import BertForMaskedLM, BertForSequenceClassification, BertModel
from .blocks import Block, Embeddings, FeedForward
from .config import TransformerConfig
from .core import ModelOutput
from .gpt import GPTForSequenceClassification, GPTModel
from .hf_weights import load_hf_weights
from .seq2seq import Transformer

__all__ = [
    "TransformerConfig", "MultiHeadAttention", "Block", "Embeddings", "FeedForward", "ModelOutput",
    "BertModel", "BertForMaskedLM", "BertForSequenceClassification",
    "GPTModel", "GPTForSequenceClassification", "Transformer", "load_hf_weights",
]
