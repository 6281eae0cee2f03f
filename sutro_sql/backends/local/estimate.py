"""Cost of local work: prices from `HomeConfig.price_per_1k_tokens`, tokens from `sutro_sql.tokens`.

A dry run counts the input tokens of every row exactly as usage does, and adds
an output allowance per row, because no answer exists yet:

- classification: the tokens of the longest label (the answer is one label);
- extraction: per output property, the tokens of its name plus 4 (a short value
  and the JSON punctuation around it).
"""

from __future__ import annotations

from ...functions import FunctionSpec
from ...tokens import count_tokens

#: Tokens allowed per extraction property on top of its name (value + JSON punctuation).
EXTRACTION_VALUE_ALLOWANCE = 4


def output_token_allowance(spec: FunctionSpec) -> int:
    """Output tokens one row of `spec` is expected to produce (see the module docstring)."""
    if spec.kind == "classification":
        return max((count_tokens(label) for label in spec.labels or {}), default=1)
    properties = (spec.output or {}).get("properties", {})
    return sum(count_tokens(name) + EXTRACTION_VALUE_ALLOWANCE for name in properties)


def cost_usd(input_tokens: int, output_tokens: int, price_per_1k_tokens: float) -> float:
    """USD for the given tokens: input and output are priced alike."""
    return round((input_tokens + output_tokens) / 1000.0 * price_per_1k_tokens, 10)
