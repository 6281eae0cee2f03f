"""A tiny deterministic encoder for tests that need the embedded engine's code paths, not its model."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashedWordsEncoder:
    """Unit vectors from hashed words: deterministic, fast, and similar texts get similar vectors."""

    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def encode_with_counts(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, 0] = 0.1  # keeps empty texts non-zero
            for word in re.findall(r"\w+", text.lower()):
                out[row, int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "big") % self.dim] += 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out, [len(re.findall(r"\w+", t)) + 2 for t in texts]
