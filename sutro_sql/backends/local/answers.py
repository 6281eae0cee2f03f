"""What an engine answer becomes: the real-time v1 response, a batch row's output, and its usage.

Batch `outputs` hold JSON text that the client unpacks into columns:
classification -> {"response": label, "predictions": [{label, confidence}, ...], "rationale": text};
extraction -> the extracted object itself (its fields become columns).
"""

from __future__ import annotations

import json
from typing import Any

from ...engines.base import EngineAnswer
from ...functions import FunctionSpec
from ...tokens import count_row_tokens, count_tokens


def usage_tokens(answer: EngineAnswer, row: dict[str, str]) -> tuple[int, int]:
    """(input, output) tokens: the engine's own counts when it reports them, else `sutro_sql.tokens`."""
    input_tokens = answer.input_tokens or count_row_tokens(row.values())
    output = answer.output if isinstance(answer.output, str) else json.dumps(answer.output, ensure_ascii=False)
    return input_tokens, answer.output_tokens or count_tokens(output)


def predictions(answer: EngineAnswer) -> list[dict[str, Any]]:
    """[{label, confidence}] sorted from most to least likely."""
    ranked = sorted(answer.predictions, key=lambda item: -item[1])
    return [{"label": label, "confidence": float(probability)} for label, probability in ranked]


def batch_output(spec: FunctionSpec, answer: EngineAnswer) -> str:
    """The JSON text stored in a batch row's `outputs` (see the module docstring)."""
    if spec.kind == "classification":
        payload: Any = {"response": answer.output, "predictions": predictions(answer), "rationale": answer.rationale}
    else:
        payload = answer.output
    return _BATCH_JSON.encode(payload)


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays an engine may hand back."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: The encoder of batch outputs, made once (json.dumps with options builds one per call).
_BATCH_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain)


def realtime_response(
    spec: FunctionSpec,
    revision: str,
    engine_name: str,
    answer: EngineAnswer,
    *,
    request_id: str,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    confidence_scoring: bool,
) -> dict[str, Any]:
    """The v1 §5.1 union response for one answer."""
    response: dict[str, Any] = {
        "request_id": request_id,
        "function": {"name": spec.name, "revision": revision, "model": engine_name, "model_source": "local"},
        "output": answer.output,
        "confidence": float(answer.confidence) if confidence_scoring else None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": cost_usd},
    }
    if spec.kind == "classification":
        response["response"] = answer.output
        response["predictions"] = predictions(answer)
    response["rationale"] = answer.rationale
    return response
