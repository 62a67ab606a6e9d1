"""What several unrelated families share, below all of them (a family imports another only to build on it).

Torch and transformers are imported inside the functions, so listing the families stays cheap.
"""

from __future__ import annotations

from typing import Any


def tiny_tokenizer() -> Any:
    """A Unigram T5 tokenizer built in code (no download): characters and a few pieces. The tiny
    Wan (UMT5) and LTX (T5) text encoders use it."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁", *"abcdefghijklmnopqrstuvwxyz0123456789.,", "▁a", "▁the", "▁of", "ing"]
    vocab = [(piece, 0.0 if index < 3 else -float(index)) for index, piece in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)
