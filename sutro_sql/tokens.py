"""Token counting for usage figures and cost estimates of the local deployment.

How we count (an approximation of a BPE tokenizer, stable across machines and
needing no vocabulary file): the text is split into words (runs of letters,
digits and underscores) and single punctuation marks; each punctuation mark is
one token, and a word is one token per started 6 characters ("refund" = 1,
"subscription" = 2, "ORD-1042" = 3). Whitespace is free. English prose comes
out at about 1.1-1.3 tokens per word, close to what GPT-style tokenizers give.

Engines may report their own counts; the local deployment uses these counts
only where an engine reports none, and for dry-run estimates of engines whose
own count a dry run cannot make (see `backends.local.estimate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PIECES = re.compile(r"\w+|[^\w\s]")
_CHARS_PER_WORD_TOKEN = 6


def count_tokens(text: str) -> int:
    """Approximate number of tokens in `text` (see the module docstring)."""
    return sum(1 + (len(piece) - 1) // _CHARS_PER_WORD_TOKEN for piece in _PIECES.findall(text))


def count_row_tokens(values: Iterable[str]) -> int:
    """Tokens of one converted input row: the sum over its field values."""
    return sum(count_tokens(value) for value in values)
