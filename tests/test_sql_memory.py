"""The answer cache's memory layer: bounded in bytes for the whole process, right answers
whatever it forgot (the disk layer answers), and warm answers identical to cold ones."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from sutro_sql.answers import ANSWER_TYPE, SOURCE_CACHE, SOURCE_ENGINE, provenance
from sutro_sql.inputs import FunctionRef
from sutro_sql.sql_layer import connect, session_for
from sutro_sql.sql_layer.cache import FunctionAnswers, MemoryBudget

RUN = "sutro_run('lead-qualifier', {'query': query, 'region': region})"


def answer(i: int) -> dict:
    return {
        "response": f"label {i}",
        "output": f'"label {i}"',
        "confidence": i / 10_000,
        "predictions": [{"label": f"label {i}", "confidence": 0.9}, {"label": "other", "confidence": 0.1}],
        "rationale": f"because of input number {i}, which says so at some length",
        "usage": {"input_tokens": i, "output_tokens": 1},
        "error": None,
    } | provenance(FunctionRef("lead-qualifier"), SOURCE_ENGINE)


def read_back(row: dict) -> dict:
    """What memory gives back for a row another statement computed."""
    return row | {"source": SOURCE_CACHE}


def text(i: int) -> str:
    return f'{{"query":"lead number {i} with a realistic amount of text","region":"EMEA"}}'


def remember(memory: FunctionAnswers, numbers: range) -> None:
    rows = pa.array([answer(i) for i in numbers], ANSWER_TYPE)
    memory.add(
        [text(i) for i in numbers], [1_000_003 * i for i in numbers], [f"c{i}" for i in numbers], rows, [0] * len(rows)
    )


def test_memory_stays_under_its_byte_bound_and_answers_what_it_holds():
    budget = MemoryBudget(256 * 1024)
    memory = FunctionAnswers(budget)
    for start in range(0, 4000, 100):
        remember(memory, range(start, start + 100))
        assert 0 < budget.used == memory.nbytes <= budget.max_bytes
        assert len(memory) < 4000
    remember(memory, range(4000, 4010))
    held = memory.find_texts([text(i) for i in range(4010)], [1_000_003 * i for i in range(4010)], epoch=1)
    assert set(range(4000, 4010)) <= set(held.positions) and len(held.positions) < 4000
    assert held.answers.to_pylist() == [read_back(answer(i)) for i in held.positions]
    assert memory.rows_for_canonicals([f"c{held.positions[0]}", "unknown"]) == [answer(held.positions[0]), None]


def test_past_the_bound_the_memory_holding_the_most_forgets():
    budget = MemoryBudget(400 * 1024)
    small, large = FunctionAnswers(budget), FunctionAnswers(budget)
    remember(small, range(50))
    remember(large, range(50))
    for start in range(50, 2000, 50):
        remember(large, range(start, start + 50))
        assert budget.used <= budget.max_bytes
    assert len(small) == 50 and small.rows_for_canonicals(["c7"]) == [answer(7)]
    assert len(large) < 2000


def test_a_hash_collision_never_returns_another_inputs_answer():
    memory = FunctionAnswers()
    memory.add(['{"text":"a"}'], [42], ["a"], pa.array([answer(1)], ANSWER_TYPE), [0])
    other = pa.array(['{"text":"b"}'])  # a different input with the same hash
    assert memory.answer_rows(np.array([42], np.uint64), other, epoch=1) is None
    assert memory.find_texts(['{"text":"b"}'], [42], epoch=1).positions == []
    rows, computed_now = memory.answer_rows(np.array([42, 42], np.uint64), pa.array(['{"text":"a"}', None]), epoch=1)
    assert rows.to_pylist() == [read_back(answer(1)), None] and computed_now == 0


def test_a_bad_memory_setting_is_refused_by_name(local_backend, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_MEMORY_CACHE_MB", "lots")
    con = connect(backend=local_backend, progress=False)
    with pytest.raises(duckdb.Error, match="SUTRO_SQL_MEMORY_CACHE_MB must be a number"):
        con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'})").fetchall()


def leads(con, rows: int, distinct: int, offset: int = 0) -> None:
    con.execute(
        f"CREATE OR REPLACE TABLE leads AS SELECT i AS id, CASE WHEN i % 11 = 5 THEN NULL ELSE "
        f"{{'query': 'lead ' || ({offset} + i % {distinct}) || CASE WHEN i % {distinct} % 3 = 0 THEN ' qualified' "
        f"ELSE ' browsing' END, 'region': 'EMEA'}} END AS s FROM range({rows}) t(i)"
    )


def rows_of(con, extra: str = "") -> list:
    return con.sql(f"SELECT id, sutro_run('lead-qualifier', s{extra}) FROM leads ORDER BY id").fetchall()


def as_read_back(rows: list) -> list:
    """`rows` as a later statement reads them: the same answers, with `source` 'cache'."""
    return [(i, a if a is None else read_back(a)) for i, a in rows]


@pytest.mark.parametrize("distinct", [1, 3, 7, 300])  # 2**k - 1 answers: a dictionary size DuckDB needs padded
def test_warm_answers_are_identical_to_cold_ones(local_backend, distinct):
    con = connect(backend=local_backend, progress=False)
    stats = session_for(con).stats
    leads(con, 5000, distinct)
    cold = rows_of(con)
    cold_abstained = rows_of(con, ", abstain_below := 0.99")
    assert stats.calls == distinct
    session_for(con).reset_stats()
    assert {a["source"] for _, a in cold if a} == {"engine"}
    assert rows_of(con) == as_read_back(cold) and rows_of(con, ", abstain_below := 0.99") == cold_abstained
    answered = sum(1 for _, a in cold if a is not None)
    assert (session_for(con).stats.calls, session_for(con).stats.cache_hits) == (0, 2 * answered)
    assert [a for _, a in cold if a is not None] and all(a is None for i, a in cold if i % 11 == 5)
    assert any(a["error"] and a["error"].startswith("abstained") for _, a in cold_abstained if a)


def test_warm_answers_from_a_memory_larger_than_a_vector_are_identical_to_cold_ones(local_backend):
    con = connect(backend=local_backend, progress=False)
    leads(con, 3000, 3000, offset=100_000)  # fills memory with 3000 other answers
    rows_of(con)
    leads(con, 5000, 500)
    cold = rows_of(con)
    session_for(con).reset_stats()
    assert rows_of(con) == as_read_back(cold)
    assert session_for(con).stats.calls == 0


def test_a_small_memory_bound_keeps_answers_right_and_the_disk_layer_answers(local_backend, counting, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_MEMORY_CACHE_MB", "0.1")
    con = connect(backend=counting, progress=False)
    leads(con, 4000, 2000)
    cold = rows_of(con)
    memory = session_for(con).memory(session_for(con).client.function("lead-qualifier"))
    assert memory.budget.max_bytes == int(0.1 * 2**20) and memory.budget.used <= memory.budget.max_bytes
    assert len(memory) < 2000  # it forgot some
    expected = {
        i: local_backend.run_function("lead-qualifier", {"query": q, "region": "EMEA"})
        for i, q in con.sql("SELECT id, s.query FROM leads WHERE s IS NOT NULL").fetchall()
    }
    assert all(a["response"] == expected[i]["response"] for i, a in cold if a is not None)
    calls = len(counting.run_calls)
    session_for(con).reset_stats()
    assert rows_of(con) == as_read_back(cold)  # from memory, else from disk
    assert len(counting.run_calls) == calls and session_for(con).stats.calls == 0
    assert session_for(con).stats.cache_hits == sum(1 for _, a in cold if a is not None)
    assert pa.array([a for _, a in cold if a], ANSWER_TYPE).field("error").null_count == len(expected)
