"""The dbt plugin's lift settings, in process on a real DuckDB: `auto_batch` (default on, or
SUTRO_SQL_AUTO_BATCH) and `auto_batch_threshold` reach the session that `_sutro_lift` (the
package's `create_table_as` override) uses. tests/test_dbt_example.py runs it through dbt."""

from __future__ import annotations

import duckdb
import pytest

pytest.importorskip("dbt.adapters.duckdb", reason="the dbt extra is not installed")

from sutro_sql.dbt import Plugin, PluginSettings
from sutro_sql.errors import ConfigurationError
from sutro_sql.sql_layer import session_for

QUERY = (
    "WITH answered AS (SELECT id, sutro_run('ticket-triage', {'subject': 's', 'body': body}) AS a FROM tickets) "
    "SELECT id, a.response, a.source FROM answered"
)


@pytest.fixture
def connect_plugin(home, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_ENGINE", "tests.support.engines:KeywordEngine")
    plugins = []

    def connect(**config):
        plugin = Plugin(name="sutro_sql", plugin_config={"home": str(home), **config})
        plugins.append(plugin)
        con = duckdb.connect()
        plugin.configure_connection(con)
        con.execute("CREATE TABLE tickets AS SELECT i AS id, 'a billing question ' || i AS body FROM range(30) r(i)")
        return con

    yield connect
    for plugin in plugins:
        backend = plugin.client.backend
        plugin.client.close()
        backend.close()


def lift(con) -> str:
    cursor = con.cursor()  # dbt's create_table_as runs it on a cursor
    try:
        ((lifted,),) = cursor.execute("SELECT _sutro_lift(?)", [QUERY]).fetchall()
    finally:
        cursor.close()
    return lifted


def test_the_plugin_lifts_by_default_above_its_threshold(connect_plugin):
    con = connect_plugin(auto_batch_threshold="10")
    lifted = lift(con)
    assert lifted != QUERY and session_for(con).stats.jobs_submitted == 1
    assert {row[2] for row in con.execute(lifted).fetchall()} == {"job"}


def test_the_default_threshold_is_the_sessions(connect_plugin):
    con = connect_plugin()
    assert session_for(con).auto_batch and session_for(con).auto_batch_threshold == 1000
    assert lift(con) == QUERY  # 30 inputs: below it


@pytest.mark.parametrize(("config", "env"), [({"auto_batch": "false"}, None), ({}, "0")], ids=["config", "env"])
def test_the_lift_turned_off_leaves_the_sql_alone(connect_plugin, monkeypatch, config, env):
    if env is not None:
        monkeypatch.setenv("SUTRO_SQL_AUTO_BATCH", env)
    con = connect_plugin(auto_batch_threshold="10", **config)
    assert lift(con) == QUERY and session_for(con).stats.jobs_submitted == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [({"auto_batch": "sometimes"}, "auto_batch"), ({"auto_batch_threshold": "0"}, "auto_batch_threshold")],
)
def test_bad_lift_settings_are_refused_by_name(config, message):
    with pytest.raises(ConfigurationError, match=message):
        PluginSettings.from_config(config)
