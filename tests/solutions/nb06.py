"""Reference solutions of notebook 06's exercises (prompt tuning), and typical wrong answers the checkers must name."""

from __future__ import annotations

import torch


def prepend_prompt(prompt, embeds, mask):
    B, n = embeds.size(0), prompt.size(0)
    out = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), embeds], dim=1)  # (B, n + T, D)
    if mask is None:
        return out, None
    return out, torch.cat([mask.new_ones(B, n), mask], dim=1)  # (B, n + T)


def prepend_prompt_after(prompt, embeds, mask):
    out, _ = prepend_prompt(prompt, embeds, mask)
    B, n = embeds.size(0), prompt.size(0)
    return torch.cat([embeds, prompt.unsqueeze(0).expand(B, -1, -1)], 1), \
        None if mask is None else torch.cat([mask, mask.new_ones(B, n)], 1)


def prepend_prompt_mask_not_grown(prompt, embeds, mask):
    return prepend_prompt(prompt, embeds, mask)[0], mask


def prepend_prompt_mask_zeros(prompt, embeds, mask):
    out, _ = prepend_prompt(prompt, embeds, mask)
    return out, None if mask is None else torch.cat([mask.new_zeros(mask.size(0), prompt.size(0)), mask], 1)


def prepend_prompt_rows_mixed(prompt, embeds, mask):
    B = embeds.size(0)
    rows = prompt.repeat(1, B).view(B, *prompt.shape)  # the wrong way to copy P for each row
    return torch.cat([rows, embeds], 1), prepend_prompt(prompt, embeds, mask)[1]


def prepend_prompt_mask_for_none(prompt, embeds, mask):
    out, grown = prepend_prompt(prompt, embeds, mask)
    return out, torch.ones(out.shape[:2], dtype=torch.long) if grown is None else grown


def text_init(ids, n, table):
    cyclic = (ids * (n // len(ids) + 1))[:n]
    return table[torch.tensor(cyclic)].clone()


def text_init_not_repeated(ids, n, table):
    return table[torch.tensor(ids[:n])].clone()


def text_init_spread(ids, n, table):
    return table[torch.tensor(ids).repeat_interleave(n // len(ids) + 1)[:n]].clone()


def text_init_zero_padded(ids, n, table):
    rows = table[torch.tensor(ids[:n])]
    return torch.cat([rows, table.new_zeros(n - rows.size(0), table.size(1))])


def text_init_not_truncated(ids, n, table):
    return table[torch.tensor(ids * (n // len(ids) + 1))].clone()


def majority_vote(votes, num_classes):
    counts = torch.zeros(votes.size(0), num_classes, dtype=torch.long)
    counts.scatter_add_(1, votes, torch.ones_like(votes))  # (B, C) votes per class
    return counts.argmax(1)  # the first maximum: the smallest class id among ties


def majority_vote_ties_to_largest(votes, num_classes):
    counts = torch.stack([torch.bincount(row, minlength=num_classes) for row in votes])
    return num_classes - 1 - counts.flip(1).argmax(1)


def majority_vote_counter(votes, num_classes):
    from collections import Counter
    return torch.tensor([Counter(row.tolist()).most_common(1)[0][0] for row in votes])


def majority_vote_mean(votes, num_classes):
    return votes.float().mean(1).round().long()
