"""A character-level tokenizer: one token per character, a fixed vocabulary.

The vocabulary is fixed once for the whole course (base tasks *and* the new tasks of later
chapters), so a checkpoint trained on the base tasks can read every new task's text.
"""

from __future__ import annotations

PAD = "_"  # pads batches on the right; causal attention means it never influences real tokens
END = "."  # ends every answer
SEP = "="  # separates a prompt from its answer; classification heads read the hidden state here

LETTERS = "abcdefghijklmnop"
DIGITS = "0123456789"
# Task markers: C, R, S for the base tasks; N, ?, P for the new tasks of later chapters.
MARKERS = "CRSN?P"

VOCAB = PAD + END + SEP + MARKERS + LETTERS + DIGITS


class CharTokenizer:
    """Maps characters to integer ids and back."""

    def __init__(self, vocab: str = VOCAB):
        if not isinstance(vocab, str) or not vocab:
            raise TypeError(f"vocab must be a non-empty str of characters, got {vocab!r}")
        if len(set(vocab)) != len(vocab):
            duplicated = sorted({c for c in vocab if vocab.count(c) > 1})
            raise ValueError(f"vocabulary has duplicated characters: {duplicated}")
        self.vocab = vocab
        self.stoi = {ch: i for i, ch in enumerate(vocab)}
        self.itos = dict(enumerate(vocab))
        self.pad_id = self.stoi[PAD] if PAD in self.stoi else None

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = []
        for position, ch in enumerate(text):
            if ch not in self.stoi:
                raise ValueError(
                    f"character {ch!r} at position {position} of {text!r} is not in the "
                    f"vocabulary; valid characters are {self.vocab!r}"
                )
            ids.append(self.stoi[ch])
        return ids

    def decode(self, ids) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int) or isinstance(ids, str) or not hasattr(ids, "__iter__"):
            raise TypeError(f"decode expects a list (or 1-D tensor) of token ids, got {ids!r}")
        chars = []
        for position, i in enumerate(ids):
            if isinstance(i, list):
                raise ValueError(f"decode expects a flat list of token ids, got a nested list at position {position}; "
                                 "decode one sequence at a time")
            if not isinstance(i, int) or isinstance(i, bool) or i not in self.itos:
                raise ValueError(
                    f"token id {i!r} at position {position} is not in the vocabulary; "
                    f"valid ids are 0..{len(self.vocab) - 1}"
                )
            chars.append(self.itos[i])
        return "".join(chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={len(self.vocab)}, vocab={self.vocab!r})"


tokenizer = CharTokenizer()
