"""The one answer shape: the `sutro_run` STRUCT, which the answer cache stores, and
`sutro_batch`'s typed columns.

Every backend answers with the v1 response dict (sutro-api-v1.md §5.1) or, for a batch
job, an `outputs` column of JSON text; this module is the only place that turns either
into that shape (and a cached one back into a v1 response), so `Client.run_function`,
the scalar path, the batch path and the `auto_batch` lift return exactly the same values
for the same answer.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from .inputs import FunctionRef

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


def response_from_row(ref: FunctionRef, row: dict[str, Any]) -> dict[str, Any]:
    """A cached `sutro_run` value -> the v1 run response it came from, so `Client.run_function`
    answers the same shape from the cache: no request id and `cached: true` (nothing was sent),
    the tokens the answer took when it was computed, and a cost of 0 (nothing is billed again)."""
    usage = row.get("usage") or {}
    response: dict[str, Any] = {
        "request_id": None,
        "cached": True,
        "function": {"name": ref.name, "revision": ref.revision or None},
        "output": None if row.get("output") is None else json.loads(row["output"]),
        "confidence": row.get("confidence"),
        "usage": {
            "input_tokens": usage.get("input_tokens") or 0,
            "output_tokens": usage.get("output_tokens") or 0,
            "cost_usd": 0.0,
        },
    }
    if row.get("response") is not None or row.get("predictions") is not None:
        response.update(response=row.get("response"), predictions=row.get("predictions"))
    if row.get("rationale") is not None:
        response["rationale"] = row["rationale"]
    return response


def job_answer_rows(kind: str | None, results: pa.Table) -> list[dict[str, Any]]:
    """Batch results (`outputs`, `confidence_score`, `error` columns) -> `sutro_run` values;
    `usage` is per job, so NULL. `kind`: the Function's kind, or None when unknown (remote)."""
    rows = []
    for text, score, error in zip(
        results.column("outputs").to_pylist(),
        results.column("confidence_score").to_pylist(),
        results.column("error").to_pylist(),
        strict=True,
    ):
        if error is not None or text is None:
            rows.append({"error": error or "no answer"})
            continue
        answer = batch_answer(text, kind)
        if "response" in answer:  # classification
            confidence = answer.get("confidence")
            rows.append(
                {
                    "response": answer["response"],
                    "output": json.dumps(answer["response"], ensure_ascii=False),
                    "confidence": score if confidence is None else confidence,
                    "predictions": answer.get("predictions"),
                    "rationale": answer.get("rationale"),
                }
            )
        else:
            rows.append({"output": json.dumps(answer, ensure_ascii=False), "confidence": score})
    return rows
