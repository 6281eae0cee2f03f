"""Cost of local work: prices from `HomeConfig.price_per_1k_tokens`, tokens counted as the run counts them.

A dry run answers nothing, so its estimate is only as good as its token counts are
close to the ones the run will bill (`answers.usage_tokens`: the engine's own counts,
else `sutro_sql.tokens`). So a dry run counts each row the way the engine that would
answer it does:

- the embedded engine: input tokens are its encoder's count of the text it reads
  (`embedded.row_text`, through `E5Encoder.truncate`, the function its
  `encode_with_counts` counts with: prefix, special tokens and the truncation cap
  included); output tokens are what it reports, 1 for a label and one per output
  property for extraction. That tokenizer costs about 1 ms for a 130-character row and
  20 ms for one past the cap, so a dry run counts the first `EXACT_ROWS` rows with it
  and, past them, a random sample (each time the row count doubles, EXACT_ROWS / 2 of
  the new rows). Every other row gets `sutro_sql.tokens`' count of the same text (a fast
  proxy) scaled by the encoder/proxy ratio of the counted rows of similar proxy length
  (rows grouped by the proxy's bit length, so the cap's effect on long rows is learned
  apart from the short ones). Exact up to EXACT_ROWS rows, a bounded cost beyond;
- any other engine (its usage is the server's, or `sutro_sql.tokens` where it reports
  none): `sutro_sql.tokens` on the row's values, plus an output allowance per row, because
  no answer exists yet: for classification the tokens of the longest label, for
  extraction per output property the tokens of its name plus 4 (a short value and the
  JSON punctuation around it).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

from ...engines.base import Engine
from ...functions import FunctionSpec
from ...tokens import count_row_tokens, count_tokens

#: Tokens allowed per extraction property on top of its name (value + JSON punctuation).
EXTRACTION_VALUE_ALLOWANCE = 4
#: Rows whose input tokens a dry run with the embedded engine counts one by one (see above).
EXACT_ROWS = 1000


class DryRunTokens:
    """A dry run's running token totals for `spec`, counted as `engine`'s run will count them
    (see the module docstring). Deterministic: the same rows give the same estimate."""

    def __init__(self, spec: FunctionSpec, engine: Engine) -> None:
        from ...engines.embedded import EmbeddedEngine, row_text  # here, not at the top: it loads numpy

        self.output_tokens = 0
        self._counted = 0  # exact input tokens of the rows counted as the run counts them
        self._rows = 0
        self._sample = random.Random(0)
        # per proxy bit length: [exact tokens of counted rows, their proxy tokens, proxy tokens of the rest]
        self._groups: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        self._cheap_count: Callable[[dict[str, str]], int] | None = None
        if isinstance(engine, EmbeddedEngine):
            encoder = engine.encoder
            truncate = getattr(encoder, "truncate", None)
            self._text = lambda row: row_text(spec, row)
            if truncate is None:  # an encoder that counts only while it encodes
                self._exact = lambda text: encoder.encode_with_counts([text])[1][0]
            else:
                self._exact = lambda text: truncate(text)[1]
            self._row_output = 1 if spec.kind == "classification" else len((spec.output or {}).get("properties", {}))
        else:
            self._cheap_count = lambda row: count_row_tokens(row.values())  # cheap: every row, as usage does
            self._row_output = output_token_allowance(spec)

    @property
    def input_tokens(self) -> int:
        """The counted rows' tokens plus, for the rest, their proxy scaled by their group's ratio."""
        known = [group for group in self._groups.values() if group[1]]
        overall = sum(g[0] for g in known) / sum(g[1] for g in known) if known else 1.0
        scaled = sum(rest * (exact / proxy if proxy else overall) for exact, proxy, rest in self._groups.values())
        return self._counted + round(scaled)

    def add(self, row: dict[str, str]) -> None:
        """Count one converted input row."""
        index, self._rows = self._rows, self._rows + 1
        self.output_tokens += self._row_output
        if self._cheap_count is not None:
            self._counted += self._cheap_count(row)
            return
        text = self._text(row)
        proxy = count_tokens(text) + 1  # + 1: an empty text still costs the encoder's prefix and specials
        group = self._groups[proxy.bit_length()]
        rate = 1 << (index // EXACT_ROWS).bit_length()  # 1 up to EXACT_ROWS, 2 up to twice that, then 4, ...
        if rate == 1 or self._sample.randrange(rate) == 0:
            exact = self._exact(text)
            self._counted += exact
            group[0] += exact
            group[1] += proxy
        else:
            group[2] += proxy


def output_token_allowance(spec: FunctionSpec) -> int:
    """Output tokens one row of `spec` is expected to produce when the engine's own count is
    not known (see the module docstring)."""
    if spec.kind == "classification":
        return max((count_tokens(label) for label in spec.labels or {}), default=1)
    properties = (spec.output or {}).get("properties", {})
    return sum(count_tokens(name) + EXTRACTION_VALUE_ALLOWANCE for name in properties)


def cost_usd(input_tokens: int, output_tokens: int, price_per_1k_tokens: float) -> float:
    """USD for the given tokens: input and output are priced alike."""
    return round((input_tokens + output_tokens) / 1000.0 * price_per_1k_tokens, 10)
