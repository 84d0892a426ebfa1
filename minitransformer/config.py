"""One configuration dataclass for every model in the package.

`TransformerConfig` describes the BERT encoder, the GPT decoder and the original encoder-decoder alike;
the fields that only one family uses say so. It validates itself on construction, so a bad geometry
fails at once with a message naming the field, the value and what is allowed.

Presets
-------
- `tiny()`                 D=16, H=2, L=2: unit tests.
- `mini_bert()`            the fast base of the notebooks (MiniLM's WordPiece vocabulary, 4 x 128).
- `mini_gpt()`             the small causal LM (byte-level BPE, 4 x 256).
- `mini_seq2seq()`         the small encoder-decoder of notebook 01.
- `bert_base()`, `gpt2_small()`, `minilm_l6()`: the real geometries, for parameter-count tests
  (build them on the `meta` device: `with torch.device("meta"): BertModel(cfg)`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


@dataclass
class TransformerConfig:
    """Geometry and switches of a Transformer (legend: V vocab, D width, H heads, L layers, F FFN width)."""

    vocab_size: int = 100  # V
    d_model: int = 16  # D
    n_heads: int = 2  # H
    n_layers: int = 2  # L (the encoder's, or the decoder's in a GPT)
    d_ff: int = 64  # F
    max_positions: int = 64  # learned position embeddings (BERT, GPT); max length of the seq2seq
    type_vocab_size: int = 2  # BERT segments; 0 = no segment embeddings
    n_decoder_layers: int = 0  # encoder-decoder only
    dropout: float = 0.1  # on embeddings, attention output and FFN output
    attn_dropout: float = 0.1  # on the attention probabilities
    activation: str = "gelu"  # "gelu" (BERT, exact erf), "gelu_tanh" (GPT-2's "gelu_new"), "relu"
    layer_norm_eps: float = 1e-12
    norm_first: bool = False  # False = post-LN (BERT, original Transformer); True = pre-LN (GPT-2)
    use_sdpa: bool = False  # False = the written-out softmax(QK^T/sqrt(Dh) + mask) V; True = fused kernel
    pad_token_id: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    extra: dict = field(default_factory=dict)  # free-form notes saved with a checkpoint (e.g. tokenizer)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TransformerConfig.{name} must be a positive int, got {value!r}")
        for name in ("type_vocab_size", "n_decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TransformerConfig.{name} must be an int >= 0, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"TransformerConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(each head gets d_model / n_heads dimensions)"
            )
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"TransformerConfig.{name} must be in [0, 1), got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TransformerConfig.activation={self.activation!r} is unknown; allowed: {ACTIVATIONS}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"TransformerConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"TransformerConfig.pad_token_id={self.pad_token_id} must be in [0, vocab_size={self.vocab_size})"
            )

    @property
    def head_dim(self) -> int:
        """Dh = D / H."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TransformerConfig got unknown fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> TransformerConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- presets -------------------------------------------------------------------------------
    @classmethod
    def tiny(cls, **kw) -> TransformerConfig:
        return cls(**{**dict(vocab_size=100, d_model=16, n_heads=2, n_layers=2, d_ff=64, max_positions=64), **kw})

    @classmethod
    def mini_bert(cls, **kw) -> TransformerConfig:
        """4 layers x 128 wide, MiniLM's 30,522-token WordPiece vocabulary (distilled from MiniLM: bases/distill.py)."""
        base = dict(vocab_size=30522, d_model=128, n_heads=4, n_layers=4, d_ff=512, max_positions=512,
                    type_vocab_size=2, activation="gelu", layer_norm_eps=1e-12, norm_first=False, pad_token_id=0)
        return cls(**{**base, **kw})

    @classmethod
    def mini_gpt(cls, **kw) -> TransformerConfig:
        """4 layers x 256 wide, an 8k byte-level BPE vocabulary, 256 positions."""
        base = dict(vocab_size=8192, d_model=256, n_heads=4, n_layers=4, d_ff=1024, max_positions=256,
                    type_vocab_size=0, activation="gelu_tanh", layer_norm_eps=1e-5, norm_first=True, pad_token_id=0)
        return cls(**{**base, **kw})

    @classmethod
    def mini_seq2seq(cls, **kw) -> TransformerConfig:
        """2 + 2 layers x 64 wide: the original post-LN encoder-decoder, sized for a character-level task."""
        base = dict(vocab_size=64, d_model=64, n_heads=4, n_layers=2, n_decoder_layers=2, d_ff=256,
                    max_positions=64, type_vocab_size=0, activation="relu", layer_norm_eps=1e-5,
                    norm_first=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        return cls(**{**base, **kw})

    @classmethod
    def bert_base(cls, **kw) -> TransformerConfig:
        """BERT-base-uncased: 12 x 768, 12 heads, FFN 3072, 30,522 tokens, 512 positions."""
        base = dict(vocab_size=30522, d_model=768, n_heads=12, n_layers=12, d_ff=3072, max_positions=512,
                    type_vocab_size=2, activation="gelu", layer_norm_eps=1e-12, norm_first=False)
        return cls(**{**base, **kw})

    @classmethod
    def minilm_l6(cls, **kw) -> TransformerConfig:
        """all-MiniLM-L6-v2: 6 x 384, 12 heads, FFN 1536, BERT's vocabulary."""
        base = dict(vocab_size=30522, d_model=384, n_heads=12, n_layers=6, d_ff=1536, max_positions=512,
                    type_vocab_size=2, activation="gelu", layer_norm_eps=1e-12, norm_first=False)
        return cls(**{**base, **kw})

    @classmethod
    def gpt2_small(cls, **kw) -> TransformerConfig:
        """GPT-2 small (124M): 12 x 768, 12 heads, FFN 3072, 50,257 tokens, 1,024 positions."""
        base = dict(vocab_size=50257, d_model=768, n_heads=12, n_layers=12, d_ff=3072, max_positions=1024,
                    type_vocab_size=0, activation="gelu_tanh", layer_norm_eps=1e-5, norm_first=True,
                    bos_token_id=50256, eos_token_id=50256)
        return cls(**{**base, **kw})
