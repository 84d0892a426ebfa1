"""`mini-bert`: a 4 x 128 BERT distilled from the all-MiniLM-L6-v2 teacher (6 x 384).

Knowledge distillation of hidden states (TinyBERT, Jiao et al. 2020, arXiv:1909.10351; MiniLM, Wang et al.
2020, arXiv:2002.10957, distils the last layer's attention instead). The student's states are mapped to the
teacher's width by learned projections W_j (128 -> 384, dropped after training); for the layer pairs
(student 2, teacher 3) and (student 4, teacher 6), over the real tokens i of a sentence:

    L_hid = ||W h_s,i - h_t,i||^2 / Var(h_t)  +  (1 - cos(W h_s,i, h_t,i))
    L_sent = 1 - cos(W mean_i h_s,i, mean_i h_t,i)            (last layer: the sentence embedding)
    L_rel = mean_{a,b} (cos(s_a, s_b) - cos(t_a, t_b))^2       (in-batch similarities of the mean-pooled
                                                                 student (128-d, unprojected) and teacher)
    L = L_hid(2, 3) + L_hid(4, 6) + L_sent + 10 L_rel

The last two aim at what a frozen mean-pooled probe reads: the pooled vector and the geometry of the sentence
space. Initialisation: the teacher's word, position and segment embeddings projected on the top 128 principal
directions of its word embeddings (SVD), so the student starts with the teacher's lexical geometry.

Data (never dev/test): the train-split texts of rt, sms_spam and trec, plus 3,000 lines of the pretraining corpus
(seeded sample), at most 64 tokens. The teacher's states are computed once (fp16; 103 s on an idle 2-core machine),
then the student runs 1,500 steps (~4.5 epochs) over them in length-bucketed batches (251 s). Total 356 s; the
measured figures of a run are in its metrics.json.
"""

from __future__ import annotations

import random
import time

import torch
from torch import nn

from ..bert import BertModel
from ..config import TransformerConfig
from ..core import mean_pool
from ..training.batching import pad_batch
from .checkpoints import SEED, load_minilm
from .corpus import corpus_lines, heldout_split, run_steps
from .datasets import load_split

PAIRS = ((2, 3), (4, 6))  # (student layer, teacher layer); 0 = embeddings


def distill_texts(n_corpus: int = 3000, seed: int = SEED) -> list[str]:
    """Train-split texts of the three classification tasks + a seeded sample of corpus lines (deduplicated)."""
    texts = [r["text"] for task in ("rt", "sms_spam", "trec") for r in load_split(task, "train")]
    lines = [t for t in heldout_split(corpus_lines())[0] if len(t.split()) >= 6]
    texts += random.Random(seed).sample(lines, n_corpus)
    return list(dict.fromkeys(texts))


@torch.no_grad()
def teacher_states(teacher: BertModel, ids: list[list[int]], batch_size: int = 128) -> list[list[torch.Tensor]]:
    """For each text, the teacher's states at the layers of PAIRS, each (T_i, 384) in fp16."""
    out: list = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        x, m = pad_batch([ids[i] for i in idx])
        states = teacher(x, attention_mask=m, output_hidden_states=True).all_hidden_states
        for b, i in enumerate(idx):
            out[i] = [states[t][b, : len(ids[i])].half() for _, t in PAIRS]
    return out


def pca_embeddings(student: BertModel, teacher: BertModel, d: int) -> None:
    """Student embeddings = teacher embeddings @ V (384 -> d), V = top-d right singular vectors of the
    centred teacher word embeddings."""
    with torch.no_grad():
        E = teacher.embeddings.word_embeddings.weight
        V = torch.linalg.svd(E - E.mean(0), full_matrices=False).Vh[:d].T  # (384, d)
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            getattr(student.embeddings, name).weight.copy_(getattr(teacher.embeddings, name).weight @ V)


def distill_loss(hs: tuple, ht: list[torch.Tensor], m: torch.Tensor, projs: nn.ModuleList, var_t: list[float]):
    """L of the module docstring. hs: student states per layer; ht: teacher targets per pair (B, T, 384)."""
    real = m.bool()
    loss = 0.0
    for j, (s_layer, _) in enumerate(PAIRS):
        p = projs[j](hs[s_layer])  # (B, T, 384)
        loss = loss + ((p - ht[j]) ** 2)[real].mean() / var_t[j]
        loss = loss + (1 - nn.functional.cosine_similarity(p[real], ht[j][real], dim=-1)).mean()
    pooled_t = mean_pool(ht[-1], m)  # (B, 384)
    pooled_s = mean_pool(hs[PAIRS[-1][0]], m)  # (B, 128)
    loss = loss + (1 - nn.functional.cosine_similarity(projs[-1](pooled_s), pooled_t, dim=-1)).mean()
    ns, nt = nn.functional.normalize(pooled_s, dim=-1), nn.functional.normalize(pooled_t, dim=-1)
    return loss + 10 * ((ns @ ns.T - nt @ nt.T) ** 2).mean()


def pretrain_mini_bert(quick: bool, seed: int = SEED, steps: int = 1500, batch_size: int = 64,
                       lr: float = 1e-3) -> tuple[BertModel, object, dict]:
    """Distil `TransformerConfig.mini_bert()` from MiniLM. Returns (student trunk, MiniLM tokenizer, stats)."""
    t0 = time.perf_counter()
    teacher, tok = load_minilm()
    texts = distill_texts(300 if quick else 3000, seed)
    if quick:
        texts = random.Random(seed).sample(texts, 800)
    tok.enable_truncation(64)
    ids = [e.ids for e in tok.encode_batch(texts)]
    tok.enable_truncation(512)
    targets = teacher_states(teacher, ids)
    var_t = [float(torch.cat([t[j] for t in targets[:2000]]).float().var()) for j in range(len(PAIRS))]
    teacher_seconds = time.perf_counter() - t0

    torch.manual_seed(seed)
    config = TransformerConfig.mini_bert(extra={"name": "mini-bert", "teacher": "all-MiniLM-L6-v2"})
    student = BertModel(config).train()
    pca_embeddings(student, teacher, config.d_model)
    projs = nn.ModuleList(nn.Linear(config.d_model, teacher.config.d_model) for _ in PAIRS)
    del teacher
    # length-bucketed batches: sort by length (ties broken at random), cut into batches, shuffle the batches
    g = random.Random(seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), g.random()))
        chunk = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        g.shuffle(chunk)
        batches += chunk
    if quick:
        steps = max(10, steps // 25)

    def loss_fn(model: BertModel, batch: dict) -> torch.Tensor:
        x, m, T = batch["input_ids"], batch["attention_mask"], batch["input_ids"].size(1)
        ht = [torch.stack([nn.functional.pad(targets[i][j].float(), (0, 0, 0, T - len(ids[i])))
                           for i in batch["index"].tolist()])
              for j in range(len(PAIRS))]  # (B, T, 384) per pair
        hs = model(x, attention_mask=m, output_hidden_states=True).all_hidden_states
        return distill_loss(hs, ht, m, projs, var_t)

    data = [dict(zip(("input_ids", "attention_mask"), pad_batch([ids[i] for i in idx])), index=torch.tensor(idx))
            for idx in batches[:steps]]
    params = list(student.parameters()) + list(projs.parameters())  # the projections train, then are dropped
    stats = run_steps(student, data, loss_fn, lr, "distil", params=params)
    stats.update(teacher_seconds=round(teacher_seconds, 1), distill_texts=len(texts),
                 distill_tokens=sum(map(len, ids)), batch_size=batch_size, lr=lr,
                 epochs=round(stats["steps"] * batch_size / len(ids), 2))
    return student.eval(), tok, stats
