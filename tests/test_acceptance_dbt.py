"""Acceptance (newcomer's view): a small dbt project of my own (a seed with NULLs, duplicates,
unicode and dates; a sutro_run model in the CTE idiom, lifted; a sutro_batch extraction; a data
test on provenance), built by real `dbt build` subprocesses: recorded, then replayed offline
into a fresh database, then a replay that meets a new row fails naming the Function."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.test_acceptance_specs import write_newcomer_specs

REPO = Path(__file__).resolve().parent.parent
DBT = Path(sys.executable).with_name("dbt")

pytestmark = [pytest.mark.dbt, pytest.mark.skipif(not DBT.exists(), reason="dbt is not installed")]

FILES = {
    "dbt_project.yml": """
        name: shop
        version: "1.0.0"
        config-version: 2
        profile: shop
        dispatch:
          - macro_namespace: dbt
            search_order: ["shop", "sutro_sql", "dbt"]
        models:
          shop:
            +materialized: table
    """,
    "profiles.yml": """
        shop:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: "{{ env_var('SHOP_DB') }}"
              threads: 1
              plugins:
                - module: sutro_sql.dbt
                  config:
                    home: "{{ env_var('SUTRO_SQL_HOME') }}"
                    auto_batch_threshold: 5
                    cache_mode: "{{ env_var('SHOP_CACHE_MODE', 'record') }}"
    """,
    "seeds/reviews.csv": """
        review_id,body,stars,posted
        1,"positive, love it ✓",5,2024-01-02
        2,"negative — broke after a day",1,2024-01-03
        3,,3,2024-01-04
        4,"positive, love it ✓",5,2024-01-05
        5,"mixed: 日本語 feelings",3,2024-01-06
        6,"negative again",2,2024-01-07
        7,"positive 7",4,2024-01-08
        8,"positive 8",4,2024-01-09
    """,
    "models/scored.sql": """
        with answered as (
          select review_id, {{ sutro_sql.sutro_run('review-sentiment', {'review': 'body'}) }} as a
          from {{ ref('reviews') }}
        )
        select review_id, a.response as sentiment, a.source as source, a.job_id as job_id from answered
    """,
    "models/extracted.sql": """
        select * from {{ sutro_sql.sutro_batch('invoice.parse', ref('reviews'), id_column='review_id',
            columns={'email_body': "coalesce(body, '') || ' ' || stars || ' ' || posted"}) }}
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: scored
            columns:
              - name: source
                data_tests:
                  - accepted_values: {arguments: {values: [job, cache]}}
              - name: sentiment
                data_tests: [not_null]
    """,
}


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "shop"
    for name, text in FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text).lstrip())
    write_newcomer_specs(project / "sutro" / "functions")
    (project / "dbt_packages").mkdir()
    (project / "dbt_packages" / "sutro_sql").symlink_to(REPO)  # what `dbt deps` does for `local: <REPO>`
    return project


def build(project: Path, database: str, *, replay: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUTRO_", "DBT_"))}
    env.update(
        SHOP_DB=str(project / database),
        SUTRO_SQL_HOME=str(project / "sutro"),
        SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine",
        SHOP_CACHE_MODE="replay" if replay else "record",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.run(
        [str(DBT), "build", "--profiles-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def provenance(project: Path, database: str) -> tuple[list, list]:
    with duckdb.connect(str(project / database), read_only=True) as con:
        scored = con.sql("SELECT source, count(*), count(DISTINCT job_id) FROM scored GROUP BY ALL").fetchall()
        extracted = con.sql("SELECT source, count(*), count(DISTINCT job_id) FROM extracted GROUP BY ALL").fetchall()
    return scored, extracted


def test_record_then_replay_offline_then_a_replay_miss_fails_the_model(project):
    recorded = build(project, "w.duckdb")
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    assert provenance(project, "w.duckdb") == ([("job", 8, 1)], [("job", 8, 1)])  # 8 rows > threshold 5: lifted
    with duckdb.connect(str(project / "w.duckdb"), read_only=True) as con:
        sentiments = con.sql("SELECT review_id, sentiment FROM scored ORDER BY review_id").fetchall()
    assert sentiments[0] == (1, "positive") and sentiments[0][1] == sentiments[3][1]

    replayed = build(project, "replay.duckdb", replay=True)
    assert replayed.returncode == 0, replayed.stdout[-3000:]
    assert provenance(project, "replay.duckdb") == ([("cache", 8, 1)], [("cache", 8, 1)])
    with duckdb.connect(str(project / "replay.duckdb"), read_only=True) as con:
        assert con.sql("SELECT review_id, sentiment FROM scored ORDER BY review_id").fetchall() == sentiments

    seed = project / "seeds" / "reviews.csv"
    seed.write_text(seed.read_text() + '9,"never seen before",1,2024-02-01\n')
    missed = build(project, "replay.duckdb", replay=True)
    assert missed.returncode != 0
    assert "Function 'review-sentiment' failed for input" in missed.stdout and "never seen before" in missed.stdout
    assert "no cached answer" in missed.stdout and "cache_mode: replay" in missed.stdout  # how it was asked for here
