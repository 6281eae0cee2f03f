"""Tempering classification confidences by a temperature fitted on the reviewed examples.

A model's label probabilities are often over- (or under-) confident, and its confidence is
what users sort and threshold on. Temperature scaling fixes that with one number per
Function revision: p ** (1/T), renormalized (T > 1 softens, T < 1 sharpens). With
`calibration_temperature: auto`, T is the value in `CALIBRATION_GRID` that best explains the
reviewed labels when each reviewed example is asked held out (the engine asks them); the fit
needs `MIN_CALIBRATION_EXAMPLES` examples covering 2 labels, else T = 1. Fits are logged to
``sutro_sql.engines.openai`` (the logger the README names).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence

from ...functions import FunctionSpec, convert_value

#: Reviewed examples a classification Function needs (covering at least 2 labels) before
#: `calibration_temperature: auto` fits a temperature; with fewer, T = 1.
MIN_CALIBRATION_EXAMPLES = 8
#: Temperatures tried by the fit: 2 ** (k/6) from 0.25 to 8 (1.0 exactly included).
CALIBRATION_GRID = tuple(2.0 ** (k / 6) for k in range(-12, 19))
#: Probability floor in the fit's log-loss, so a label given probability 0 costs a finite amount.
PROBABILITY_FLOOR = 1e-6

logger = logging.getLogger(__package__)


def temper(probabilities: dict[str, float], temperature: float) -> dict[str, float]:
    """p ** (1/T), renormalized (temperature scaling of log-probabilities)."""
    if temperature == 1.0:
        return probabilities
    scaled = {label: p ** (1.0 / temperature) for label, p in probabilities.items()}
    total = sum(scaled.values())
    return {label: value / total for label, value in scaled.items()}


def fit_temperature(observed: Sequence[tuple[dict[str, float], str]]) -> float:
    """The T in `CALIBRATION_GRID` minimising the log-loss of the true labels under
    `temper(probabilities, T)` (probabilities floored at `PROBABILITY_FLOOR`); ties go to the
    T closest to 1, so evidence that cannot tell temperatures apart changes nothing."""

    def log_loss(temperature: float) -> float:
        total = 0.0
        for probabilities, truth in observed:
            logits = {label: math.log(max(p, PROBABILITY_FLOOR)) / temperature for label, p in probabilities.items()}
            top = max(logits.values())
            normalizer = top + math.log(sum(math.exp(logit - top) for logit in logits.values()))
            total += normalizer - logits.get(truth, math.log(PROBABILITY_FLOOR) / temperature)
        return total / len(observed)

    return min(CALIBRATION_GRID, key=lambda t: (round(log_loss(t), 12), abs(math.log(t))))


def can_calibrate(spec: FunctionSpec) -> bool:
    """Enough reviewed examples, covering at least 2 labels, to fit a temperature."""
    covered = {convert_value(example.output) for example in spec.examples}
    return spec.kind == "classification" and len(spec.examples) >= MIN_CALIBRATION_EXAMPLES and len(covered) >= 2


def temperature_from_held_out(
    engine_name: str, spec: FunctionSpec, held_out: Sequence[dict[str, float] | None]
) -> float:
    """The fitted T for `spec` given each reviewed example's held-out label probabilities
    (None where the row failed or had no usable logprobs): 1.0 when fewer than half of
    `MIN_CALIBRATION_EXAMPLES` gave probabilities."""
    observed = [
        (probabilities, convert_value(example.output))
        for example, probabilities in zip(spec.examples, held_out, strict=True)
        if probabilities is not None
    ]
    if len(observed) < MIN_CALIBRATION_EXAMPLES // 2:
        logger.info(
            "%s: %s (revision %s): calibration temperature 1.0, only %d of %d held-out examples gave label "
            "probabilities",
            engine_name,
            spec.name,
            spec.revision,
            len(observed),
            len(spec.examples),
        )
        return 1.0
    temperature = fit_temperature(observed)
    logger.info(
        "%s: %s (revision %s): fitted calibration temperature %.3f on %d held-out examples",
        engine_name,
        spec.name,
        spec.revision,
        temperature,
        len(observed),
    )
    return temperature


class FittedTemperatures:
    """The fitted T per (Function, revision): fitted once however many threads ask, and not
    cached when the fit raises (the next caller fits again)."""

    def __init__(self) -> None:
        self._fitted: dict[tuple[str, str], float] = {}
        self._fit_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, spec: FunctionSpec, fit: Callable[[], float]) -> float:
        """The cached T for `spec`, or `fit()`'s, cached."""
        key = (spec.name, spec.revision)
        fitted = self._fitted.get(key)
        if fitted is None:
            with self._lock:
                fit_lock = self._fit_locks.setdefault(key, threading.Lock())
            with fit_lock:
                fitted = self._fitted.get(key)
                if fitted is None:
                    fitted = self._fitted[key] = fit()
        return fitted
