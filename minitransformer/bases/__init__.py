"""The pretrained bases and their data, one module each (import them by name; this package imports nothing, so
that `datasets` stays usable without torch, as `data/prepare.py` needs):

    datasets     the prepared splits, label names, the corpus and MiniLM files (reads only, no torch)
    tokenizer    WordPiece, byte-level BPE, MiniLM's vocabulary
    checkpoints  checkpoint folders, MiniLM's real weights, the random-weights control
    corpus       held-out lines, packed blocks, BERT masking, the recipes' training settings
    distill      `mini-bert`, distilled from MiniLM
    pretrain     `mini-bert-mlm`, `mini-gpt`, and `load_pretrained` / `load_pretrained_classifier`
    probe        frozen probes, small fine-tunes and a Naive Bayes floor (`make probe`)

    from minitransformer.bases.pretrain import load_pretrained
    bert, tokenizer = load_pretrained("mini-bert")     # pretrains it first (minutes, once) if missing

Import order (no cycles): datasets -> tokenizer -> checkpoints -> corpus -> distill -> pretrain -> probe.
"""
