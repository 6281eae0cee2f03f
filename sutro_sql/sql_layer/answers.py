"""The shapes answers take in SQL: the one `sutro_run` STRUCT, and `sutro_batch`'s typed columns.

Every backend answers with the v1 response dict (sutro-api-v1.md §5.1); this module
is the only place that turns it into Arrow, so the scalar path, the batch path and
the `auto_batch` lift return exactly the same values for the same answer.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

PREDICTION_TYPE = pa.struct([("label", pa.string()), ("confidence", pa.float64())])
USAGE_TYPE = pa.struct([("input_tokens", pa.int64()), ("output_tokens", pa.int64())])

#: The Arrow type of one `sutro_run` answer (`output` is JSON text; DuckDB sees it as JSON).
ANSWER_TYPE = pa.struct(
    [
        ("response", pa.string()),
        ("output", pa.string()),
        ("confidence", pa.float64()),
        ("predictions", pa.list_(PREDICTION_TYPE)),
        ("rationale", pa.string()),
        ("usage", USAGE_TYPE),
        ("error", pa.string()),
    ]
)

#: The same type spelled in DuckDB SQL: the return type of `sutro_run` for every Function.
ANSWER_SQL_TYPE = (
    "STRUCT(response VARCHAR, output JSON, confidence DOUBLE, "
    "predictions STRUCT(label VARCHAR, confidence DOUBLE)[], rationale VARCHAR, "
    "usage STRUCT(input_tokens BIGINT, output_tokens BIGINT), error VARCHAR)"
)

#: Classification columns of a `sutro_batch` result, after the id column.
CLASSIFICATION_COLUMNS = pa.schema(
    [
        ("response", pa.string()),
        ("confidence", pa.float64()),
        ("predictions", pa.list_(PREDICTION_TYPE)),
        ("rationale", pa.string()),
    ]
)


def answer_row(response: dict[str, Any]) -> dict[str, Any]:
    """A v1 run-function response -> one `sutro_run` STRUCT value (a plain dict for pyarrow)."""
    usage = response.get("usage") or {}
    predictions = response.get("predictions")
    return {
        "response": _text_or_none(response.get("response")),
        "output": json.dumps(response.get("output"), ensure_ascii=False, sort_keys=False),
        "confidence": _float_or_none(response.get("confidence")),
        "predictions": None if predictions is None else [_prediction(p) for p in predictions],
        "rationale": _text_or_none(response.get("rationale")),
        "usage": {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
        },
        "error": None,
    }


def error_row(message: str) -> dict[str, Any]:
    """The `sutro_run` value of a failed row under `on_error := 'null'`: only `error` is set."""
    return {name: None for name in ANSWER_TYPE.names} | {"error": message}


def batch_answer(output_json: str | None, kind: str | None) -> dict[str, Any]:
    """One `outputs` cell of a batch job (JSON text) -> a dict of answer fields.

    Classification: response, confidence, predictions, rationale. Extraction: the
    output object's fields (plus `rationale`). Accepts the answer object itself
    (``{"response": ..., "predictions": ...}`` or the extracted fields) or a
    v1-style envelope with an ``output`` key, so it reads any backend's results.
    """
    if output_json is None:
        return {}
    value = json.loads(output_json)
    if not isinstance(value, dict):
        return {"response": _text_or_none(value)}
    is_classification = kind == "classification" or (kind is None and "response" in value)
    if is_classification:
        label = value.get("response", value.get("output", value.get("label")))
        predictions = value.get("predictions")
        return {
            "response": _text_or_none(label),
            "confidence": _float_or_none(value.get("confidence")),
            "predictions": None if predictions is None else [_prediction(p) for p in predictions],
            "rationale": _text_or_none(value.get("rationale")),
        }
    fields = value.get("output") if isinstance(value.get("output"), dict) else value
    return dict(fields)


def _prediction(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return {"label": _text_or_none(item.get("label")), "confidence": _float_or_none(item.get("confidence"))}
    label, confidence = item  # (label, probability) pairs
    return {"label": str(label), "confidence": float(confidence)}


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
