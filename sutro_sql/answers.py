"""The one answer shape: the `sutro_run` STRUCT, which the answer cache stores, and
`sutro_batch`'s typed columns.

Every backend answers with the v1 response dict (sutro-api-v1.md §5.1) or, for a batch
job, an `outputs` column of JSON text; this module is the only place that turns either
into that shape (and a cached one back into a v1 response), so `Client.run_function`,
the scalar path, the batch path and the `auto_batch` lift return exactly the same values
for the same answer.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from .errors import QueryError
from .inputs import FunctionRef
from .sql_text import query_arrow

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
        ("function", pa.string()),
        ("revision", pa.string()),
        ("engine", pa.string()),
        ("job_id", pa.string()),
        ("source", pa.string()),
        ("escalated", pa.bool_()),
    ]
)

#: The same type spelled in DuckDB SQL: the return type of `sutro_run` for every Function.
ANSWER_SQL_TYPE = (
    "STRUCT(response VARCHAR, output JSON, confidence DOUBLE, "
    "predictions STRUCT(label VARCHAR, confidence DOUBLE)[], rationale VARCHAR, "
    "usage STRUCT(input_tokens BIGINT, output_tokens BIGINT), error VARCHAR, "
    "function VARCHAR, revision VARCHAR, engine VARCHAR, job_id VARCHAR, source VARCHAR, escalated BOOLEAN)"
)

#: Where an answer came from, after its fields: the Function and revision that answered, its
#: engine (a local Function's `engine`, or the remote deployment's URL), the batch job that
#: computed it (NULL in real time), `source` and whether a cascade escalated the row.
PROVENANCE_FIELDS = ("function", "revision", "engine", "job_id", "source", "escalated")
#: `source` values: computed by this statement in real time, read back from the answer cache
#: (it existed before the statement: memory or disk), or computed by a batch job.
SOURCE_ENGINE, SOURCE_CACHE, SOURCE_JOB = "engine", "cache", "job"

#: Classification columns of a `sutro_batch` result, after the id column.
CLASSIFICATION_COLUMNS = pa.schema(
    [
        ("response", pa.string()),
        ("confidence", pa.float64()),
        ("predictions", pa.list_(PREDICTION_TYPE)),
        ("rationale", pa.string()),
    ]
)


#: Keys of an answer envelope (the v1 run response, a batch `outputs` object, their variants);
#: an object with other keys is an extraction's fields.
ENVELOPE_KEYS = frozenset(
    {"response", "label", "output", "content", "predictions", "confidence", "confidence_score", "rationale"}
    | {"reasoning_content", "usage", "request_id", "run_id", "function", "cached"}
)


def normalize_answer(answer: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """Every documented answer shape -> one set of fields: `response` (the label; classification
    only), `output` (the answer value), `confidence`, `predictions` (highest first), `rationale`.

    Accepted: the label in `response`, `label` or only in `output` (a shape the SDK's own tests
    use); the answer in `output` or `content`, or inside a legacy ``{"content": ...,
    "reasoning_content": ...}`` envelope; `confidence` or `confidence_score`; `run_id` or not.
    `kind` is the Function's kind, or None when unknown (a remote Function): then an answer
    with a label, predictions or a scalar output is a classification."""
    output = answer["output"] if "output" in answer else answer.get("content")
    rationale = answer.get("rationale")
    if isinstance(output, dict) and "content" in output and set(output) <= {"content", "reasoning_content"}:
        rationale = rationale if rationale is not None else output.get("reasoning_content")
        output = output["content"]
    label = answer["response"] if answer.get("response") is not None else answer.get("label")
    predictions = answer.get("predictions")
    if kind is None:
        scalar_output = output is not None and not isinstance(output, (dict, list))
        kind = "classification" if label is not None or predictions is not None or scalar_output else "extraction"
    if kind == "classification":
        if label is None:
            label = output.get("label", output.get("response")) if isinstance(output, dict) else output
        if output is None:
            output = label
    ranked = (
        None if predictions is None else sorted(map(_prediction, predictions), key=lambda p: -(p["confidence"] or 0))
    )
    confidence = answer["confidence"] if answer.get("confidence") is not None else answer.get("confidence_score")
    return {
        "response": _text_or_none(label) if kind == "classification" else None,
        "output": output,
        "confidence": _float_or_none(confidence),
        "predictions": ranked,
        "rationale": _text_or_none(rationale),
    }


def answer_row(response: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """A v1 run-function response (any documented shape) -> one `sutro_run` STRUCT value."""
    usage = response.get("usage") or {}
    fields = normalize_answer(response, kind)
    return fields | {
        "output": json.dumps(fields["output"], ensure_ascii=False),
        "usage": {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
        },
        "error": None,
    }


def engine_row(response: dict[str, Any], ref: FunctionRef) -> dict[str, Any]:
    """`answer_row` of a response `ref` computed now, with its provenance (a remote deployment
    names the revision in its response)."""
    named = response.get("function")
    revision = named.get("revision") if isinstance(named, dict) else None
    made = provenance(ref, SOURCE_ENGINE) | ({"revision": revision} if revision else {})
    return answer_row(response, ref.kind) | made


def provenance(ref: FunctionRef, source: str, job_id: str | None = None) -> dict[str, Any]:
    """The provenance fields of an answer `ref` computed (`escalated` is the cascade's to set)."""
    return {
        "function": ref.name,
        "revision": ref.revision or None,
        "engine": ref.engine,
        "job_id": job_id,
        "source": source,
        "escalated": False,
    }


def cached_row(ref: FunctionRef, row: dict[str, Any], *, cached: bool = True) -> dict[str, Any]:
    """A `sutro_run` value read back from the answer cache: it keeps the function, revision,
    engine and job it was computed with (a row cached before answers carried them gets what
    the cache key tells: `ref`'s), and says `source` 'cache' unless `cached` is False (this
    statement computed it)."""
    filled = provenance(ref, SOURCE_ENGINE) | {"job_id": None} | row
    return filled | {"source": SOURCE_CACHE} if cached else filled


def from_cache(answers: pa.StructArray, cached: pa.Array | np.ndarray | None = None) -> pa.StructArray:
    """`answers` with `source` 'cache' on every row (`cached` None), or where `cached` is true:
    one constant column (or one `if_else`), never per-row Python, so the warm path stays cheap."""
    source = answers.field("source")
    if cached is None:
        column = pa.repeat(pa.scalar(SOURCE_CACHE, pa.string()), len(answers))
    else:  # a failed row (no source) stays as it is
        column = pc.if_else(pc.and_(cached, source.is_valid()), pa.scalar(SOURCE_CACHE, pa.string()), source)
    fields = [column if name == "source" else answers.field(name) for name in ANSWER_TYPE.names]
    mask = answers.is_null() if answers.null_count else None
    return pa.StructArray.from_arrays(fields, fields=list(ANSWER_TYPE), mask=mask)


def abstain(answers: pa.StructArray, below: float | None) -> pa.StructArray:
    """`answers` where every answer less confident than `below` keeps its fields but has
    `response` NULL and `error` = 'abstained: confidence 0.41 < 0.60', so `WHERE ... IS NULL`
    finds the rows for a person to review; failed rows keep their own error."""
    if below is None or len(answers) == 0:
        return answers
    confidence = answers.field("confidence")
    unsure = pc.and_(pc.less(confidence, below), pc.is_null(answers.field("error"))).fill_null(False)
    if not pc.any(unsure).as_py():
        return answers
    messages = [
        f"abstained: confidence {value:.2f} < {below:.2f}" if flag else None
        for value, flag in zip(confidence.to_pylist(), unsure.to_pylist(), strict=True)
    ]
    fields = {name: answers.field(name) for name in ANSWER_TYPE.names}
    fields["response"] = pc.if_else(unsure, pa.scalar(None, pa.string()), fields["response"])
    fields["error"] = pc.if_else(unsure, pa.array(messages, pa.string()), fields["error"])
    return pa.StructArray.from_arrays(list(fields.values()), fields=list(ANSWER_TYPE), mask=answers.is_null())


def check_abstain_below(value: Any, where: str) -> float | None:
    """A probability in [0, 1], or None; anything else is refused naming the parameter."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise QueryError(f"{where}: abstain_below must be a probability between 0 and 1, got {value!r}")
    return float(value)


def error_row(message: str, ref: FunctionRef) -> dict[str, Any]:
    """The `sutro_run` value of a failed row under `on_error := 'null'`: `error`, and the Function
    that failed it (as a lifted row's says); no answer, so no `source`."""
    return (
        {name: None for name in ANSWER_TYPE.names} | provenance(ref, SOURCE_ENGINE) | {"source": None, "error": message}
    )


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


#: The `outputs` object of a classification as the local deployment writes it (answers/local).
_LABELLED_OUTPUT = pa.schema(
    [("response", pa.string()), ("predictions", pa.list_(PREDICTION_TYPE)), ("rationale", pa.string())]
)


def job_answer_array(kind: str | None, results: pa.RecordBatch | pa.Table) -> pa.StructArray:
    """`job_answer_rows` as one Arrow array of `ANSWER_TYPE`: vectorized when every answer is a
    classification object of the local shape (label, ranked predictions, rationale), which
    Arrow's JSON reader parses at once; row by row otherwise."""
    if kind != "extraction":
        labelled = _labelled_answers(results)
        if labelled is not None:
            return labelled
    return pa.array(job_answer_rows(kind, results), ANSWER_TYPE)


def _labelled_answers(results: pa.RecordBatch | pa.Table) -> pa.StructArray | None:
    """The answers of `results` when every answered row is ``{"response": label, "predictions":
    [...] (highest first), "rationale": ...}`` with a label; None when any row is not."""
    outputs, errors = results.column("outputs"), results.column("error")
    answered = pc.and_(pc.is_null(errors), pc.is_valid(outputs))
    texts = outputs.filter(answered)
    if pc.any(pc.invert(pc.starts_with(texts, "{"))).as_py() or pc.any(pc.match_substring(texts, "\n")).as_py():
        return None
    options = pa_json.ParseOptions(explicit_schema=_LABELLED_OUTPUT, unexpected_field_behavior="error")
    try:
        parsed = pa_json.read_json(io.BytesIO("\n".join(texts.to_pylist()).encode()), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    labels, predictions = parsed.column("response"), parsed.column("predictions")
    if parsed.num_rows != len(texts) or labels.null_count or not _ranked(predictions):
        return None
    good = answered.cast(pa.uint8()).to_numpy().astype(bool)  # (a bool array's to_numpy imports pandas)
    rows = pa.array(np.where(good, np.cumsum(good) - 1, 0), mask=~good)  # result row -> parsed row
    unique = pc.unique(labels)
    encoded = pa.array([json.dumps(label, ensure_ascii=False) for label in unique.to_pylist()], pa.string())
    fields = {
        "response": labels.take(rows),
        "output": encoded.take(pc.index_in(labels, value_set=unique)).take(rows),
        "confidence": pc.if_else(answered, results.column("confidence_score"), pa.scalar(None, pa.float64())),
        "predictions": predictions.take(rows),
        "rationale": parsed.column("rationale").take(rows),
        "error": pc.if_else(
            pc.or_kleene(answered, pc.greater(pc.binary_length(errors), 0)).fill_null(False), errors, "no answer"
        ),
    }
    columns = [
        pa.chunked_array(fields[f.name]).combine_chunks().cast(f.type)
        if f.name in fields
        else pa.nulls(len(good), f.type)
        for f in ANSWER_TYPE
    ]  # fields a batch output does not carry (usage, provenance) are NULL, as row by row
    return pa.StructArray.from_arrays(columns, fields=list(ANSWER_TYPE))


def with_fields(answers: pa.StructArray, values: dict[str, Any]) -> pa.StructArray:
    """`answers` with the fields named in `values` set to that value on every row (a constant
    column each, e.g. the provenance of a job's answers)."""
    columns = [
        pa.repeat(pa.scalar(values[f.name], f.type), len(answers)) if f.name in values else answers.field(f.name)
        for f in ANSWER_TYPE
    ]
    return pa.StructArray.from_arrays(
        columns, fields=list(ANSWER_TYPE), mask=answers.is_null() if answers.null_count else None
    )


def _ranked(predictions: pa.ChunkedArray) -> bool:
    """Is every list of predictions ordered from most to least confident (no confidence missing)?"""
    lists = predictions.combine_chunks()
    confidences = pc.list_flatten(lists).field("confidence")
    if confidences.null_count:
        return False
    values = confidences.to_numpy(zero_copy_only=False)
    owners = pc.list_parent_indices(lists).to_numpy()
    same_list = owners[1:] == owners[:-1]
    return bool(np.all(values[1:][same_list] <= values[:-1][same_list]))


def answer_json(answers: pa.StructArray) -> list[str]:
    """Each answer as the JSON text of its `sutro_run` value (what the answer cache stores), by
    one DuckDB `to_json` over the whole array rather than a json.dumps per row."""
    table = query_arrow("SELECT CAST(to_json(answer) AS VARCHAR) FROM answers", answers=pa.table({"answer": answers}))
    return table.column(0).to_pylist()


def job_answer_rows(kind: str | None, results: pa.Table) -> list[dict[str, Any]]:
    """Batch results (`outputs`, `confidence_score`, `error` columns) -> `sutro_run` values;
    `usage` is per job, so NULL. `kind`: the Function's kind, or None when unknown (remote).
    An `outputs` cell is JSON text: an answer envelope (see `normalize_answer`), an
    extraction's object itself, or a bare label."""
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
        value = json.loads(text)
        if not isinstance(value, dict) or (kind != "extraction" and not set(value) <= ENVELOPE_KEYS):
            value = {"output": value}  # a bare label, or an extraction's fields
        elif kind == "extraction" and "output" not in value:
            value = {"output": value}
        fields = normalize_answer(value, kind)
        if fields["confidence"] is None:
            fields["confidence"] = score
        rows.append(fields | {"output": json.dumps(fields["output"], ensure_ascii=False)})
    return rows
