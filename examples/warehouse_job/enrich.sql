-- Enrich new support tickets from a Parquet landing folder with Sutro Functions.
--
--   sutro-sql run enrich.sql --db warehouse.duckdb --var landing=landing
--
-- Safe to schedule, re-run and kill: only tickets whose id is not yet in
-- tickets_enriched are sent, each statement commits when it ends, and a
-- re-run after a crash re-attaches to the batch job it already started.

CREATE TABLE IF NOT EXISTS tickets_enriched (
    id BIGINT PRIMARY KEY,          -- a second insert of the same ticket fails instead of duplicating it
    created_at TIMESTAMP,
    customer VARCHAR,
    subject VARCHAR,
    body VARCHAR,
    team VARCHAR,                   -- ticket-triage (sutro_batch)
    team_confidence DOUBLE,
    order_id VARCHAR,               -- ticket-extractor (sutro_run), billing tickets only
    amount DOUBLE,
    sentiment VARCHAR,
    extract_error VARCHAR,
    enriched_at TIMESTAMP
);

-- The tickets not enriched yet, sorted by id so the same pending rows always make
-- the same batch job (a re-run re-attaches to it). TEMP is fine here: `sutro-sql run`
-- runs sutro_batch's query on this connection first (see `sutro_sql.sql`).
CREATE OR REPLACE TEMP TABLE tickets_pending AS
SELECT id, created_at, customer, subject, body
FROM read_parquet(${landing} || '/*.parquet')
WHERE id NOT IN (SELECT id FROM tickets_enriched)
ORDER BY id;

-- One statement, so one transaction: a kill before it commits leaves no partial rows.
INSERT INTO tickets_enriched BY NAME
WITH triaged AS (
    SELECT p.*, t.response AS team, t.confidence_score AS team_confidence
    FROM tickets_pending p
    JOIN sutro_batch('ticket-triage', 'SELECT id, subject, body FROM tickets_pending ORDER BY id',
                     id_column := 'id', job_name := 'ticket-triage enrichment') t USING (id)
),
extracted AS (
    SELECT *,
           CASE WHEN team = 'billing'
                THEN sutro_run('ticket-extractor', {'body': body}, on_error := 'null') END AS facts
    FROM triaged
)
SELECT id, created_at, customer, subject, body, team, team_confidence,
       facts.output ->> 'order_id' AS order_id,
       TRY_CAST(facts.output ->> 'amount' AS DOUBLE) AS amount,
       facts.output ->> 'sentiment' AS sentiment,
       facts.error AS extract_error,
       now() AS enriched_at
FROM extracted;

CREATE OR REPLACE TABLE ticket_summary AS
SELECT team,
       count(*) AS tickets,
       round(avg(team_confidence), 3) AS avg_confidence,
       count(order_id) AS with_order_id,
       round(sum(amount), 2) AS amount_mentioned,
       max(enriched_at) AS last_enriched_at
FROM tickets_enriched
GROUP BY team
ORDER BY tickets DESC;

SELECT * FROM ticket_summary;
