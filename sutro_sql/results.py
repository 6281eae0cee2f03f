"""Turn a backend's raw job results into the DataFrame the official SDK returns (v1 §7.8).

The backend hands over Arrow columns in input row order: ``inputs`` (when
asked), metadata such as the id column, ``outputs`` (JSON text per row, null
for failed rows), ``confidence_score`` and ``error``. This module applies the
SDK's rules: drop what was not asked for, rename ``outputs``, order the
columns, unpack JSON objects into one column per field (added at the end),
and join onto the caller's original DataFrame.

Where sutro-sql differs from the SDK, on purpose:

- ``error`` (sutro-sql's reason for a failed row) is kept as a metadata column
  when some row failed, and dropped when none did, so a clean job has exactly
  the SDK's columns.
- Outputs that are JSON scalars (a classification label sent as ``"billing"``)
  are decoded to plain values; the SDK keeps the quoted JSON text.
- When the Function's output schema is known (local Functions), unpacked
  fields get its types, so a field that is null in every row is still typed.
"""

from __future__ import annotations

import sys
from typing import Any

import polars as pl
import pyarrow as pa

OUTPUTS = "outputs"
INPUTS = "inputs"
LOGPROBS = "cumulative_logprobs"
CONFIDENCE = "confidence_score"
ERROR = "error"

_SCALAR_TYPES = (pl.String, pl.Boolean, pl.Int64, pl.Float64)


def job_results_frame(
    raw: pa.Table,
    *,
    include_inputs: bool = False,
    include_cumulative_logprobs: bool = False,
    output_column: str = "inference_result",
    unpack_json: bool = True,
    unwrap_reasoning: bool = False,
    with_original_df: Any = None,
    output_schema: pa.Schema | None = None,
) -> Any:
    """The SDK's `get_job_results` DataFrame: polars, or pandas when `with_original_df` is pandas."""
    frame = pl.from_arrow(raw)
    assert isinstance(frame, pl.DataFrame)
    if OUTPUTS not in frame.columns:
        raise ValueError(f"job results have no {OUTPUTS!r} column (columns: {frame.columns})")
    frame = _drop_unrequested(frame, include_inputs, include_cumulative_logprobs)
    if output_column != OUTPUTS and output_column in frame.columns:
        raise ValueError(
            f"output_column {output_column!r} clashes with a results column of the same name; "
            "pass a different output_column."
        )
    frame = frame.rename({OUTPUTS: output_column})
    frame = frame.select(_sdk_column_order(frame.columns, output_column))
    metadata = [c for c in frame.columns if c not in (INPUTS, LOGPROBS, CONFIDENCE, output_column)]

    original = _as_polars(with_original_df) if with_original_df is not None else None
    if original is not None and original.height != frame.height:
        raise ValueError(
            f"with_original_df has {original.height} rows but the job has {frame.height} results; "
            "pass the DataFrame the job was submitted with."
        )
    if unpack_json:
        taken = set(original.columns) if original is not None else set()
        frame = _unpack_json(frame, output_column, output_schema, taken, unwrap_reasoning)
    if original is None:
        return frame
    joined = _join_original(original, frame, metadata)
    return joined.to_pandas() if _is_pandas(with_original_df) else joined


def _drop_unrequested(frame: pl.DataFrame, include_inputs: bool, include_logprobs: bool) -> pl.DataFrame:
    drop = [LOGPROBS] if LOGPROBS in frame.columns and not include_logprobs else []
    if INPUTS in frame.columns and not include_inputs:
        drop.append(INPUTS)
    if ERROR in frame.columns and frame[ERROR].null_count() == frame.height:
        drop.append(ERROR)
    return frame.drop(drop)


def _sdk_column_order(columns: list[str], output_column: str) -> list[str]:
    """inputs, metadata (API order), output, cumulative_logprobs, confidence_score."""
    special = {INPUTS, LOGPROBS, CONFIDENCE, output_column}
    metadata = [c for c in columns if c not in special]
    head = [INPUTS] if INPUTS in columns else []
    tail = [c for c in (LOGPROBS, CONFIDENCE) if c in columns]
    return [*head, *metadata, output_column, *tail]


def _unpack_json(
    frame: pl.DataFrame, column: str, schema: pa.Schema | None, taken: set[str], unwrap_reasoning: bool = False
) -> pl.DataFrame:
    """Replace the output column by one column per JSON field, added at the end; keep it raw
    unless every non-null value is a non-empty JSON object (or, sutro-sql's addition, a JSON scalar).
    With `unwrap_reasoning`, legacy reasoning envelopes ({"content": {...}, "reasoning_content": ...})
    become `reasoning_content` followed by the content's fields, as the SDK does."""
    values = frame[column]
    if values.dtype != pl.String:
        return frame
    present = values.drop_nulls().str.strip_chars()
    if present.len() == 0:
        return frame
    if not (present.str.starts_with("{") & present.str.ends_with("}")).all():
        return _decode_scalars(frame, column)
    try:
        decoded = values.str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return frame  # some row is not valid JSON: the SDK keeps the raw text
    if not isinstance(decoded.dtype, pl.Struct) or not decoded.dtype.fields:
        return frame  # every object empty
    fields = pl.DataFrame(decoded).unnest(column)
    content = fields.schema.get("content")
    if unwrap_reasoning and set(fields.columns) == {"content", "reasoning_content"} and isinstance(content, pl.Struct):
        fields = pl.concat(
            [fields.select("reasoning_content"), fields.select("content").unnest("content")], how="horizontal"
        )
    fields = _apply_schema(fields, schema)
    existing = (set(frame.columns) - {column}) | taken
    clashes = [name for name in fields.columns if name in existing]
    if clashes:
        raise ValueError(
            f"unpacking the JSON output would create column(s) {clashes} that already exist; "
            "pass unpack_json=False to keep the output as one JSON text column."
        )
    return pl.concat([frame.drop(column), fields], how="horizontal")


def _decode_scalars(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Outputs that are all JSON scalars of one type become that type; anything else stays raw."""
    try:
        decoded = frame[column].str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return frame
    if not isinstance(decoded.dtype, _SCALAR_TYPES):
        return frame
    if decoded.dtype == pl.String and frame[column].drop_nulls().str.strip_chars().str.starts_with('"').not_().any():
        return frame  # polars coerced mixed scalars to text: not one type, keep the raw JSON
    return frame.with_columns(decoded.alias(column))


def _apply_schema(fields: pl.DataFrame, schema: pa.Schema | None) -> pl.DataFrame:
    """Give known fields the Function schema's types (schema order first), and add the schema
    fields no row carried as typed null columns."""
    if schema is None:
        return fields
    typed = pl.from_arrow(schema.empty_table()).schema
    for name, dtype in typed.items():
        if name not in fields.columns:
            fields = fields.with_columns(pl.lit(None, dtype=dtype).alias(name))
            continue
        try:
            fields = fields.with_columns(fields[name].cast(dtype, strict=True))
        except pl.exceptions.PolarsError:
            pass  # the answers disagree with the schema: keep them as they are
    return fields.select([*typed, *(name for name in fields.columns if name not in typed)])


def _join_original(original: pl.DataFrame, results: pl.DataFrame, metadata: list[str]) -> pl.DataFrame:
    """Append the result columns to the caller's frame. A shared column is allowed only when it
    is a metadata column (like the id column) with identical values and type; it is kept once."""
    shared = [c for c in results.columns if c in original.columns]
    for name in shared:
        same = (
            name in metadata
            and original[name].dtype == results[name].dtype
            and original[name].equals(results[name], check_names=False)
        )
        if not same:
            raise ValueError(
                f"column {name!r} is in both with_original_df and the job results with different "
                "contents; rename it in your DataFrame, or pass output_column=... / unpack_json=False."
            )
    return pl.concat([original, results.drop(shared)], how="horizontal")


def _is_pandas(data: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _as_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if _is_pandas(data):
        return pl.from_pandas(data)
    if isinstance(data, pa.Table):
        frame = pl.from_arrow(data)
        assert isinstance(frame, pl.DataFrame)
        return frame
    raise TypeError(f"with_original_df must be a pandas or polars DataFrame, got {type(data).__name__}")
