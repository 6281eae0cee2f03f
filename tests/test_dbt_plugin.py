"""The dbt-duckdb plugin and the Python-model helper, in process on a real DuckDB
(no dbt run here: tests/test_dbt_example.py builds the example project)."""

from __future__ import annotations

import duckdb
import pytest

pytest.importorskip("dbt.adapters.duckdb", reason="the dbt extra is not installed")

from sutro_sql.dbt import Plugin, PluginSettings, batch, build_client, quote_identifier, quote_literal
from sutro_sql.errors import ConfigurationError, NotFoundError

TRIAGE_LABELS = {"billing", "bug", "account_access", "feature_request"}
NASTY_TEXTS = ["plain", "it's", "'; DROP TABLE tickets; --", "\\'", '"quoted"', "", "ünï'cödé\n"]


@pytest.fixture
def keyword_home(home, monkeypatch):
    """`home` with every Function answered by the KeywordEngine, as a subprocess would configure it."""
    monkeypatch.setenv("SUTRO_SQL_ENGINE", "tests.support.engines:KeywordEngine")
    return home


@pytest.fixture
def plugin(keyword_home):
    plugin = Plugin(name="sutro_sql", plugin_config={"home": str(keyword_home), "max_concurrency": "2"})
    yield plugin
    backend = plugin.client.backend
    plugin.client.close()
    backend.close()


@pytest.fixture
def tickets(plugin):
    con = duckdb.connect()
    plugin.configure_connection(con)
    con.execute(
        "CREATE TABLE tickets AS SELECT * FROM (VALUES "
        "(10, 'Refund', 'I need a refund, billing charged me twice'), "
        "(20, 'Crash', 'The app shows a bug on export'), "
        "(30, 'Idea', 'Please add a feature_request for dark mode')) AS t(ticket_id, subject, body)"
    )
    yield con
    con.close()


def test_settings_accept_text_rendered_by_env_var():
    settings = PluginSettings.from_config(
        {"home": " sutro ", "max_concurrency": "4", "cache": "false", "progress": "TRUE", "api_url": "", "api_key": ""}
    )
    assert settings == PluginSettings(home="sutro", max_concurrency=4, cache=False, progress=True)


def test_settings_refuse_an_unknown_key_by_name_but_ignore_duckdb_settings():
    with pytest.raises(ConfigurationError, match="unknown config key.*max_concurency"):
        PluginSettings.from_config({"max_concurency": 4})
    assert PluginSettings.from_config({"threads": 4}, ignore=["threads"]) == PluginSettings()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_concurrency": "0"}, "max_concurrency"),
        ({"max_concurrency": "many"}, "max_concurrency"),
        ({"cache": "maybe"}, "cache"),
    ],
)
def test_settings_refuse_bad_values(config, message):
    with pytest.raises(ConfigurationError, match=message):
        PluginSettings.from_config(config)


def test_settings_never_show_the_api_key():
    settings = PluginSettings.from_config({"api_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret-123"})
    assert settings.api_key == "sk-secret-123"
    assert "sk-secret-123" not in repr(settings)


def test_backend_is_remote_when_a_url_is_configured_and_never_names_the_key(home):
    backend = build_client(
        PluginSettings(api_url="http://127.0.0.1:9/v1", api_key="sk-secret-123", home=str(home))
    ).backend
    try:
        assert type(backend).__name__ == "RemoteBackend"
        assert "sk-secret-123" not in backend.identity
    finally:
        backend.close()


def test_backend_reads_specs_from_functions_dir(tmp_path, home):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "only.yaml").write_text((home / "functions" / "ticket-triage.yaml").read_text())
    backend = build_client(PluginSettings(home=str(tmp_path / "elsewhere"), functions_dir=str(specs))).backend
    try:
        assert [spec.name for spec in backend.functions()] == ["ticket-triage"]
    finally:
        backend.close()


def test_plugin_registers_functions_on_the_connection_and_on_each_cursor(tickets, plugin):
    cursors = [tickets.cursor() for _ in range(2)]
    for cursor in cursors:
        plugin.configure_cursor(cursor)
    for cursor in [tickets, *cursors]:
        labels = cursor.sql(
            "SELECT sutro_run('ticket-triage', {'subject': subject, 'body': body}).response FROM tickets ORDER BY ticket_id"
        ).fetchall()
        assert [label for (label,) in labels] == ["billing", "bug", "feature_request"]


def test_batch_helper_answers_a_relation_joinable_by_id(tickets):
    answers = batch(
        tickets, "ticket-triage", tickets.table("tickets"), id_column="ticket_id", columns=["subject", "body"]
    )
    rows = (
        tickets.table("tickets").join(answers, "ticket_id").select("ticket_id, response").order("ticket_id").fetchall()
    )
    assert rows == [(10, "billing"), (20, "bug"), (30, "feature_request")]


def test_batch_helper_takes_a_select_text_and_numbers_rows_without_an_id(tickets):
    answers = batch(tickets, "ticket-triage", "SELECT subject, body FROM tickets WHERE ticket_id > 10")
    assert answers.count("*").fetchall() == [(2,)]
    assert {label for (label,) in answers.select("response").fetchall()} <= TRIAGE_LABELS


def test_batch_helper_keeps_a_quoted_function_name_inside_its_literal(tickets):
    name = "ticket-triage'); DROP TABLE tickets; --"
    with pytest.raises((NotFoundError, duckdb.Error), match="DROP TABLE tickets"):
        batch(tickets, name, tickets.table("tickets"), id_column="ticket_id").fetchall()
    assert tickets.sql("SELECT count(*) FROM tickets").fetchall() == [(3,)]


def test_batch_helper_refuses_what_it_cannot_send(tickets):
    with pytest.raises(TypeError, match="relation must be"):
        batch(tickets, "ticket-triage", [{"subject": "a", "body": "b"}])
    with pytest.raises(ValueError, match="not a plain identifier"):
        batch(tickets, "ticket-triage", "SELECT 1", **{"on_error := 'null', x": 1})


@pytest.mark.parametrize("text", NASTY_TEXTS)
def test_quoted_literals_and_identifiers_round_trip_through_duckdb(text):
    con = duckdb.connect()
    assert con.sql(f"SELECT {quote_literal(text)}").fetchall() == [(text,)]
    if text:
        assert con.sql(f"SELECT 1 AS {quote_identifier(text)}").columns == [text]
