"""How soon each ticket needs an answer, from a dbt Python model.

`sutro_sql.dbt.batch` sends a relation through one batch job of a Function and
returns a DuckDB relation of answers: the id column, `response`, `confidence_score`
(and the other answer columns), which joins back to the input by id.
"""

from sutro_sql.dbt import batch


def model(dbt, session):
    dbt.config(materialized="table")
    tickets = dbt.ref("stg_tickets")
    answers = batch(session, "ticket-priority", tickets, id_column="ticket_id", columns=["subject", "body"])
    return tickets.join(answers, "ticket_id").select(
        "ticket_id, created_at, channel, response AS priority, confidence_score AS confidence"
    )
