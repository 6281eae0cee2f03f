"""Cascades: answers the first Function is unsure of go to a stronger one, and targets that pick
the threshold from reviewed rows. One home for SQL (`sutro_run`, `sutro_batch`), dbt and Python.

A cascade is (first Function, stronger Function, threshold t). A row keeps the first answer
when its confidence is at least t; a row answered with less confidence, or with no confidence,
goes to the stronger Function, and the answer says `escalated`. Failed rows do not escalate:
a row that fails is usually a bad input, and `on_error` decides what happens to it as always.

A target (`target_accuracy`) picks t from calibration rows (inputs with a reviewed `label`):
the first Function answers them, and t is the lowest threshold for which the one-sided 95%
Clopper-Pearson lower bound on the accuracy of the rows the first Function KEEPS (confidence
>= t) is at least the target. The bound is exact for a binomial (no normal approximation, so
it holds for the small sets reviewers produce). It holds for each threshold on its own;
picking the lowest of those that pass leans a little optimistic (a stricter procedure, fixed-
sequence testing from the top that stops at the first failure, escalated 90% and 100% of BBC
rows for targets 0.90 and 0.95 that this rule met escalating 5% and 30%: bench/cascade.py). What is bounded is the
accuracy of the kept rows, the part the threshold controls: the escalated rows are as accurate
as the stronger Function, which the calibration rows do not measure (the stated assumption:
the stronger Function meets the target on its own).

A stronger Function on another backend is named `<backend>:<function>` (Function names have no
colon): `remote:` is the deployment at SUTRO_API_URL with SUTRO_API_KEY, `embedded:` the
embedded deployment of the Client's home, and `Client.add_backend(alias, backend)` adds others.
The key stays in the environment or the backend object; it is never part of a name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import environment
from .answers import ANSWER_TYPE
from .backends import Backend, open_backend
from .errors import ConfigurationError, QueryError, SutroSQLError, ValidationError
from .inputs import FunctionRef

if TYPE_CHECKING:
    from .client import Client

#: Confidence level of the accuracy bound a target is met with.
CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class CascadeRequest:
    """What a call asks for: escalate to `to` below `below`, or below the threshold that meets
    `target_accuracy` on the calibration rows (`calibrate_on`'s query, else the spec's examples)."""

    to: str
    below: float | None = None
    target_accuracy: float | None = None
    calibrate_on: str | None = None


def cascade_request(
    ref: FunctionRef,
    escalate_to: str | None,
    escalate_below: float | None,
    target_accuracy: float | None,
    calibrate_on: str | None,
    where: str,
) -> CascadeRequest | None:
    """The cascade of a call: its own arguments, else its Function's spec (`cascade:`), else None.
    Bad combinations are refused naming the parameter."""
    if escalate_to is None:
        if escalate_below is not None or target_accuracy is not None or calibrate_on is not None:
            raise QueryError(f"{where}: escalate_below, target_accuracy and calibrate_on need escalate_to")
        spec = ref.spec.cascade if ref.spec is not None else None
        if spec is None:
            return None
        return CascadeRequest(spec.to, spec.below, spec.target_accuracy)
    if not isinstance(escalate_to, str) or not escalate_to:
        raise QueryError(f"{where}: escalate_to must name a Function, got {escalate_to!r}")
    if (escalate_below is None) == (target_accuracy is None):
        raise QueryError(f"{where}: escalate_to needs exactly one of escalate_below or target_accuracy")
    for name, value in (("escalate_below", escalate_below), ("target_accuracy", target_accuracy)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise QueryError(f"{where}: {name} must be a probability between 0 and 1, got {value!r}")
    if calibrate_on is not None and target_accuracy is None:
        raise QueryError(f"{where}: calibrate_on is used with target_accuracy")
    below = None if escalate_below is None else float(escalate_below)
    target = None if target_accuracy is None else float(target_accuracy)
    return CascadeRequest(escalate_to, below, target, calibrate_on)


# -- other backends -------------------------------------------------------------------------------


def open_named_backend(alias: str, home: str | os.PathLike[str] | None, max_concurrency: int) -> Backend:
    """The backend `alias:<function>` names: `remote` (SUTRO_API_URL with SUTRO_API_KEY, from the
    environment only, so no key is ever part of a name) or `embedded` (the home's own deployment)."""
    if alias == "remote":
        url, key = environment.get(environment.API_URL), environment.get(environment.API_KEY)
        if not (url and key):
            raise ConfigurationError(
                f"'remote:<function>' names a Function on the deployment at {environment.API_URL}, reached with "
                f"{environment.API_KEY}: set both, or add the backend with Client.add_backend('remote', backend)"
            )
        return open_backend(home, url, key, max_concurrency=max_concurrency)
    if alias == "embedded":
        return open_backend(home, embedded=True)
    raise ConfigurationError(
        f"unknown backend {alias!r} in a Function name: use remote:<function>, embedded:<function>, "
        "or name the backend with Client.add_backend"
    )


# -- the bound ------------------------------------------------------------------------------------


def accuracy_lower_bound(correct: int, rows: int, confidence: float = CONFIDENCE_LEVEL) -> float:
    """One-sided Clopper-Pearson lower bound: the accuracy p with P(X >= correct | rows, p) =
    1 - confidence, i.e. the `1 - confidence` quantile of Beta(correct, rows - correct + 1)."""
    if not 0 <= correct <= rows:
        raise ValueError(f"correct must be between 0 and rows, got {correct} of {rows}")
    if correct == 0:
        return 0.0
    alpha = 1.0 - confidence
    low, high = 0.0, 1.0
    for _ in range(60):  # bisection: the tail grows with p
        middle = (low + high) / 2
        if _regularized_beta(middle, correct, rows - correct + 1) < alpha:
            low = middle
        else:
            high = middle
    return low


def rows_needed(target: float, confidence: float = CONFIDENCE_LEVEL) -> int:
    """The fewest calibration rows whose bound can reach `target`: all of them answered right,
    when the bound is (1 - confidence) ** (1 / rows)."""
    if target <= 0:
        return 1
    if target >= 1:
        raise ValidationError("target_accuracy 1.0 cannot be shown with any number of rows; use at most 0.999")
    return math.ceil(math.log(1 - confidence) / math.log(target) - 1e-12)


def _regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction (Lentz's method), as Numerical Recipes' betai."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CascadePlan:
    """The threshold a target picked, and what it was picked from. `threshold` is infinite when
    no threshold meets the target: every row escalates."""

    function: str
    escalate_to: str
    target_accuracy: float
    confidence_level: float
    calibration_rows: int
    threshold: float
    kept_rows: int
    kept_correct: int
    kept_accuracy_bound: float
    escalated_correct: int | None = None  # with the stronger Function checked: its right answers
    cascade_accuracy_bound: float | None = None  # ... and the bound on the whole cascade's accuracy

    @property
    def escalated_share(self) -> float:
        """Share of the calibration rows the threshold escalates: the expected share of a run."""
        return 1 - self.kept_rows / self.calibration_rows

    def describe(self) -> str:
        """One line for stderr, saying what was chosen and why."""
        head = (
            f"sutro-sql cascade {self.function} -> {self.escalate_to}: target accuracy {self.target_accuracy:.3g} "
            f"at {self.confidence_level:.0%} confidence on {self.calibration_rows} calibration rows: "
        )
        if math.isinf(self.threshold):
            return head + "no threshold meets it, every row escalates" + self._checked()
        return (
            head
            + (
                f"escalate_below {self.threshold:.4f}, expected {self.escalated_share:.0%} escalated "
                f"(kept rows: {self.kept_correct}/{self.kept_rows} right, accuracy >= {self.kept_accuracy_bound:.3f})"
            )
            + self._checked()
        )

    def _checked(self) -> str:
        if self.cascade_accuracy_bound is None:
            return ""
        escalated = self.calibration_rows - self.kept_rows
        return (
            f"; {self.escalate_to} right on {self.escalated_correct}/{escalated} escalated, "
            f"cascade accuracy >= {self.cascade_accuracy_bound:.3f}"
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "escalate_to": self.escalate_to,
            "target_accuracy": self.target_accuracy,
            "confidence_level": self.confidence_level,
            "calibration_rows": self.calibration_rows,
            "escalate_below": None if math.isinf(self.threshold) else self.threshold,
            "escalated_share": self.escalated_share,
            "kept_rows": self.kept_rows,
            "kept_correct": self.kept_correct,
            "kept_accuracy_bound": self.kept_accuracy_bound,
            "escalated_correct": self.escalated_correct,
            "cascade_accuracy_bound": self.cascade_accuracy_bound,
        }


def choose_threshold(
    confidences: Sequence[float | None],
    correct: Sequence[bool],
    target: float,
    confidence: float = CONFIDENCE_LEVEL,
) -> tuple[float, int, int, float]:
    """(threshold, kept rows, kept right, bound): the lowest threshold t (among the distinct
    confidences) whose kept rows (confidence >= t) have a Clopper-Pearson lower bound >=
    `target`. Rows without a confidence are never kept. Too few rows for any bound to reach the
    target raise ValidationError saying how many are needed."""
    needed = rows_needed(target, confidence)
    if len(confidences) < needed:
        raise ValidationError(
            f"target_accuracy {target:g} needs at least {needed} calibration rows for a one-sided "
            f"{confidence:.0%} Clopper-Pearson bound (that many, all answered right; more when some are wrong), "
            f"got {len(confidences)}"
        )
    scored = sorted(
        ((c, bool(ok)) for c, ok in zip(confidences, correct, strict=True) if c is not None), key=lambda p: -p[0]
    )
    chosen = (math.inf, 0, 0, 0.0)
    kept = right = 0
    for index, (value, ok) in enumerate(scored):
        kept += 1
        right += ok
        if index + 1 < len(scored) and scored[index + 1][0] == value:
            continue  # a threshold keeps every row of its confidence
        if kept >= needed:
            bound = accuracy_lower_bound(right, kept, confidence)
            if bound >= target:
                chosen = (value, kept, right, bound)
    return chosen


def plan_cascade(
    client: Client,
    ref: FunctionRef,
    escalate_to: str,
    target_accuracy: float,
    rows: Sequence[tuple[dict[str, Any] | str, Any]],
    *,
    confidence: float = CONFIDENCE_LEVEL,
    strong: tuple[Client, FunctionRef] | None = None,
) -> CascadePlan:
    """Answer the calibration `rows` ((input, reviewed label) pairs) with the first Function
    (through the Client: cached, deduplicated) and pick the threshold (see `choose_threshold`).
    A row whose answer failed counts as not kept. With `strong` (the stronger Function's Client
    and ref), the rows the threshold escalates are answered by it too, which checks the stated
    assumption: the plan then also bounds the accuracy of the whole cascade on these rows."""
    confidences, correct = graded_answers(client, ref, rows)
    threshold, kept, right, bound = choose_threshold(confidences, correct, target_accuracy, confidence)
    plan = CascadePlan(ref.name, escalate_to, target_accuracy, confidence, len(rows), threshold, kept, right, bound)
    if strong is None:
        return plan
    escalated = [row for row, value in zip(rows, confidences, strict=True) if value is None or value < threshold]
    strong_right = sum(graded_answers(*strong, escalated)[1])
    cascade_bound = accuracy_lower_bound(right + strong_right, len(rows), confidence)
    return dataclasses.replace(plan, escalated_correct=strong_right, cascade_accuracy_bound=cascade_bound)


def graded_answers(
    client: Client, ref: FunctionRef, rows: Sequence[tuple[dict[str, Any] | str, Any]]
) -> tuple[list[float | None], list[bool]]:
    """Per (input, reviewed label) row, the Function's confidence (None when it failed) and
    whether its answer is the reviewed one; each distinct input is asked once, through the cache."""
    canonicals: list[str] = []
    payloads: dict[str, Any] = {}
    for value, _ in rows:
        payload, canonical = ref.canonical(value)
        canonicals.append(canonical)
        payloads[canonical] = payload
    answers = client.answer_inputs(ref, payloads) if payloads else {}
    confidences: list[float | None] = []
    correct: list[bool] = []
    for canonical, (_, label) in zip(canonicals, rows, strict=True):
        answer = answers[canonical]
        row = None if isinstance(answer, SutroSQLError) else answer.row
        confidences.append(None if row is None else row.get("confidence"))
        correct.append(row is not None and answer_matches(row, label))
    return confidences, correct


def answer_matches(row: dict[str, Any], label: Any) -> bool:
    """Whether an answer is the reviewed one: the label of a classification, or the output of an
    extraction (as an object, or its JSON text)."""
    if row.get("response") is not None:
        return str(row["response"]) == str(label)
    output = json.loads(row["output"]) if row.get("output") is not None else None
    if isinstance(label, str):
        try:
            label = json.loads(label)
        except json.JSONDecodeError:
            pass
    return output == label


def calibration_digest(rows: Sequence[tuple[str, Any]]) -> str:
    """What identifies a calibration set: its canonical inputs and labels, in order."""
    digest = hashlib.sha256()
    for canonical, label in rows:
        digest.update(f"{canonical}\x1f{label}\x1e".encode())
    return digest.hexdigest()


# -- answers ----------------------------------------------------------------------------------


def escalation_mask(answers: pa.StructArray, below: float) -> np.ndarray:
    """Per answer, whether it escalates: answered (no error), with a confidence below `below` or
    none at all. NULL answers (NULL input) never do."""
    if len(answers) == 0:
        return np.zeros(0, bool)
    confidence = answers.field("confidence")
    unsure = pc.fill_null(pc.less(confidence, below), True)
    answered = pc.and_(pc.is_null(answers.field("error")), answers.is_valid())
    return pc.and_(unsure, answered).to_numpy(zero_copy_only=False)


def merge(first: pa.StructArray, second: pa.StructArray, escalated: np.ndarray) -> pa.StructArray:
    """`first` with the rows at `escalated` (ascending positions) replaced by `second`'s answers,
    and `escalated` set: true for those rows, false for the rest (NULL for NULL answers)."""
    order = np.arange(len(first), dtype=np.int64)
    order[escalated] = len(first) + np.arange(len(escalated), dtype=np.int64)
    both = pa.concat_arrays([first.cast(ANSWER_TYPE), second.cast(ANSWER_TYPE)]).take(pa.array(order))
    flags = np.zeros(len(first), bool)
    flags[escalated] = True
    fields = {name: both.field(name) for name in ANSWER_TYPE.names}
    fields["escalated"] = pa.array(flags, mask=~both.is_valid().to_numpy(zero_copy_only=False))
    return pa.StructArray.from_arrays(list(fields.values()), fields=list(ANSWER_TYPE), mask=both.is_null())
