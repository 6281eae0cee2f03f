"""The `openai:<model>` engine (see `engine`), split by idea: `transport` (one chat completion
over HTTP), `prompt` (a Function as chat messages), `replies` (validating replies, logprobs as
probabilities) and `calibration` (the temperature fitted on held-out reviewed examples).

This package re-exports the names the rest of sutro-sql, the tests and the benchmarks import.
"""

from .calibration import MIN_CALIBRATION_EXAMPLES, fit_temperature, temper
from .engine import OpenAIEngine
from .prompt import render_input
from .replies import CONFIDENCE_WITHOUT_LOGPROBS, label_probabilities, reply_confidence
from .transport import TOP_LOGPROBS, chat_completions_url

__all__ = [
    "CONFIDENCE_WITHOUT_LOGPROBS",
    "MIN_CALIBRATION_EXAMPLES",
    "TOP_LOGPROBS",
    "OpenAIEngine",
    "chat_completions_url",
    "fit_temperature",
    "label_probabilities",
    "render_input",
    "reply_confidence",
    "temper",
]
