"""Cascades in SQL: `sutro_run(..., escalate_to := 'fn-strong', escalate_below := 0.8)` (or
`target_accuracy := 0.95, calibrate_on := 'SELECT ..., label FROM reviewed'`), the same named
parameters on `sutro_batch`, and `sutro_cascade_plan(...)`, the table that shows what a target
picks. The rules (who escalates, how a target picks its threshold) are the Client's
(`sutro_sql.cascade`); this module feeds them the SQL layer's rows.

`sutro_run`: the first Function answers the vector as any `sutro_run` does; the rows it is
unsure of go, as one smaller vector, through the same UDF path for the stronger Function (its
own memory, cache, dedup and `on_error`), and the answers are merged back in row order.
`sutro_batch`: the first Function's job answers every row; the escalated distinct inputs are
spooled again and sent to the stronger Function as ONE more job (both jobs keyed by content,
so a re-run re-attaches to each). Abstention applies to the final answer.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..answers import abstain, check_abstain_below
from ..cascade import CascadeRequest, cascade_request, escalation_mask, merge
from ..errors import QueryError
from ..inputs import FunctionRef
from .rewrite import validate_read_query
from .scalar import ScalarRunner, _array
from .session import SutroSession, binding_a_relation
from .spool import INPUT_COLUMN, Spool

#: The columns of `sutro_cascade_plan(...)`.
PLAN_SCHEMA = pa.schema(
    [
        ("function", pa.string()),
        ("escalate_to", pa.string()),
        ("target_accuracy", pa.float64()),
        ("confidence_level", pa.float64()),
        ("calibration_rows", pa.int64()),
        ("escalate_below", pa.float64()),
        ("escalated_share", pa.float64()),
        ("kept_rows", pa.int64()),
        ("kept_correct", pa.int64()),
        ("kept_accuracy_bound", pa.float64()),
        ("escalated_correct", pa.int64()),
        ("cascade_accuracy_bound", pa.float64()),
    ]
)

#: Statements whose cascade threshold `sutro_run` remembers (more than run at once).
RECENT_STATEMENTS = 64


def threshold(session: SutroSession, ref: FunctionRef, request: CascadeRequest) -> float:
    """The cascade's threshold: the one given, else the one its target picks on the rows of
    `calibrate_on` (else the spec's reviewed examples)."""
    rows = calibration_rows(session, request.calibrate_on) if request.calibrate_on is not None else None
    return session.client.cascade_threshold(ref.name, request, rows)


def calibration_rows(session: SutroSession, query: str) -> list[tuple[dict[str, Any], Any]]:
    """(input, label) per row of a `calibrate_on` query: its `label` column is the reviewed answer,
    the other columns the input, as `sutro_run` would be given them (DuckDB's `to_json`)."""
    sql_text = validate_read_query(query)
    cursor = session.connection.cursor()
    try:
        relation = cursor.sql(sql_text)
        if "label" not in relation.columns:
            raise QueryError(
                f"calibrate_on must return a label column (the reviewed answer) beside the inputs; "
                f"it returns {relation.columns}"
            )
        texts = cursor.sql(
            f"SELECT CAST(to_json(__sutro_calibration) AS VARCHAR) FROM (\n{sql_text}\n) AS __sutro_calibration"
        ).fetchall()
    finally:
        cursor.close()
    rows = []
    for (text,) in texts:
        value = json.loads(text)
        rows.append((value, value.pop("label")))
    return rows


@dataclass(frozen=True)
class CascadeCall:
    """A `sutro_run` call site's options object, split: the cascade's arguments, and the options
    each stage runs with (the first stage's Function, then the stronger one's; no abstention,
    which applies to the merged answer)."""

    function: Any
    arguments: tuple[Any, Any, Any, Any]  # escalate_to, escalate_below, target_accuracy, calibrate_on
    abstain_below: float | None
    statement: int
    stage_options: dict[str, Any]

    def options_for(self, function: str) -> pa.Array:
        return pa.array([json.dumps(self.stage_options | {"function": function})])


@functools.lru_cache(maxsize=256)
def cascade_call(text: str) -> CascadeCall:
    """The options object of a call (parsed once per distinct text: the same for a statement)."""
    options = json.loads(text)
    arguments = tuple(
        options.get(name) for name in ("escalate_to", "escalate_below", "target_accuracy", "calibrate_on")
    )
    return CascadeCall(
        options["function"],
        arguments,
        check_abstain_below(options.get("abstain_below"), "sutro_run"),
        options["statement"],
        {name: value for name, value in options.items() if name not in CASCADE_OPTIONS} | {"abstain_below": None},
    )


#: The options a stage does not see: the cascade's own.
CASCADE_OPTIONS = frozenset({"escalate_to", "escalate_below", "target_accuracy", "calibrate_on"})


class CascadingScalarRunner:
    """The `_sutro_run` UDF: `ScalarRunner` for the first Function and, when the call (or the
    Function's spec) names a cascade, again for the rows it escalates."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session
        self.first = ScalarRunner(session)
        self._thresholds: dict[tuple[Any, ...], float] = {}  # (statement, Function, cascade) -> threshold
        self._lock = threading.Lock()  # DuckDB calls the UDF from several threads

    def __call__(self, inputs: pa.ChunkedArray, hashes: pa.ChunkedArray, options: pa.ChunkedArray) -> pa.Array:
        values = _array(inputs)
        if values.null_count == len(values):
            return self.first(inputs, hashes, options)
        call = cascade_call(_array(options)[0].as_py())
        ref = self.session.function(call.function)
        request = cascade_request(ref, *call.arguments, "sutro_run")
        if request is None:
            return self.first(inputs, hashes, options)
        answers = _decoded(self.first(inputs, hashes, call.options_for(ref.name)))
        key = (call.statement, ref.name, ref.revision, request)
        with self._lock:  # one statement computes its threshold once
            below = self._thresholds.get(key)
            if below is None:
                below = self._thresholds[key] = threshold(self.session, ref, request)
                while len(self._thresholds) > RECENT_STATEMENTS:
                    self._thresholds.pop(next(iter(self._thresholds)))
        escalated = np.flatnonzero(escalation_mask(answers, below))
        second = answers.slice(0, 0)
        if len(escalated):
            stage, name = self.session.cascade_stage(request.to)
            picked = pa.array(escalated)
            runner = self.first if stage is self.session else ScalarRunner(stage)
            second = _decoded(runner(values.take(picked), _array(hashes).take(picked), call.options_for(name)))
            if not binding_a_relation():  # each SQL row is answered once: by its final answer
                self.session.count(rows_answered=-len(escalated), rows_escalated=len(escalated))
        return abstain(merge(answers, second, escalated), call.abstain_below)


def _decoded(answers: pa.Array) -> pa.StructArray:
    """A stage's answers as one STRUCT per row (the scalar path may return a dictionary array)."""
    if isinstance(answers, pa.DictionaryArray):
        return answers.dictionary.take(answers.indices)
    return answers


def escalate_spool(
    answer_spool: Callable[[SutroSession, FunctionRef, Spool], Any],
    session: SutroSession,
    ref: FunctionRef,
    spool: Spool,
    first: pa.StructArray,
    codes: np.ndarray,
    request: CascadeRequest,
) -> pa.StructArray:
    """`sutro_batch`'s second stage: `first`, the first job's answer per distinct input (`codes`:
    per spool row, its distinct input), with those it is unsure of replaced by the stronger
    Function's, from ONE job over just those inputs (spooled again, so its content key is its
    own and a re-run re-attaches to it). `answer_spool(stage, ref, spool)` answers a spool on a
    session (the batch path's `BatchRunner.answer`; what it returns has `per_row()`)."""
    below = threshold(session, ref, request)
    escalated = np.flatnonzero(escalation_mask(first, below))
    if not len(escalated):
        return merge(first, first.slice(0, 0), escalated)
    stage, name = session.cascade_stage(request.to)
    rows = _first_rows(codes, escalated)
    subset = _spool_subset(spool, rows, session.workdir)
    try:
        second = answer_spool(stage, stage.function(name), subset).per_row()  # read while the spool exists
    finally:
        subset.remove()
    # each SQL row is answered once, by its final answer: take back what the second job counted
    # per distinct input, and what the first counted for the rows it escalated
    per_input = np.bincount(codes, minlength=len(first))[escalated]
    failed = second.field("error").is_valid().to_numpy(zero_copy_only=False)
    failed_rows = int(per_input[failed].sum())
    session.count(
        rows_answered=-(len(escalated) - int(failed.sum())) - failed_rows,
        rows_failed=failed_rows - int(failed.sum()),
        rows_escalated=int(per_input.sum()),
    )
    return merge(first, second, escalated)


def _first_rows(codes: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Per distinct input in `distinct`, the first spool row holding it."""
    first = np.full(int(codes.max()) + 1, -1, np.int64)
    positions = np.arange(len(codes), dtype=np.int64)
    first[codes[::-1]] = positions[::-1]
    return first[distinct]


def _spool_subset(spool: Spool, rows: np.ndarray, workdir: str) -> Spool:
    """A spool of `spool`'s rows at `rows` (one per escalated distinct input, in order)."""
    table = pq.read_table(spool.path, columns=[INPUT_COLUMN]).take(pa.array(rows))
    path = os.path.join(workdir, f"spool-{uuid.uuid4().hex}.parquet")
    pq.write_table(table, path)
    return Spool(path, len(rows), spool.inputs, None, "", "", table.schema)


class CascadePlanTable:
    """The `_sutro_cascade_plan(fn, escalate_to, target_accuracy, calibrate_on, check_strong)` UDF:
    the Parquet file of one row that `sutro_cascade_plan(...)` reads (the chosen threshold, the
    expected share escalated, what the bound was computed from and, with `check_strong`, how the
    stronger Function did on the escalated calibration rows)."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def __call__(
        self,
        fn: str | None,
        escalate_to: str | None,
        target_accuracy: float | None,
        calibrate_on: str | None,
        check_strong: bool | None,
    ) -> str:
        ref = self.session.function(fn)
        if target_accuracy is None:
            raise QueryError("sutro_cascade_plan: target_accuracy is required")
        request = cascade_request(ref, escalate_to, None, target_accuracy, calibrate_on, "sutro_cascade_plan")
        assert request is not None
        rows = calibration_rows(self.session, calibrate_on) if calibrate_on is not None else None
        plan = self.session.client.plan_cascade(
            ref.name, request.to, target_accuracy, rows, check_strong=bool(check_strong)
        )
        path = os.path.join(self.session.workdir, f"plan-{uuid.uuid4().hex}.parquet")
        pq.write_table(pa.Table.from_pylist([plan.as_row()], PLAN_SCHEMA), path)
        return path
