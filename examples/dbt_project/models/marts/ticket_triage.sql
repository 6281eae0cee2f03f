-- Tickets routed to a team by the `ticket-triage` Function. Incremental: a run
-- sends only the tickets that are not in the table yet. A full build has more
-- distinct tickets than the profile's auto_batch_threshold, so its sutro_run calls
-- become one batch job; each row says where its answer came from (answer_source:
-- job, engine or cache).
{{ config(materialized='incremental', unique_key='ticket_id') }}

with new_tickets as (
    select ticket_id, created_at, channel, subject, body
    from {{ ref('stg_tickets') }}
    {% if is_incremental() %}
    where ticket_id not in (select ticket_id from {{ this }})
    {% endif %}
),

answered as (
    select
        *,
        {{ sutro_sql.sutro_run('ticket-triage', {'subject': 'subject', 'body': 'body'}) }} as triage
    from new_tickets
)

select
    ticket_id,
    created_at,
    channel,
    {{ sutro_sql.unpack('triage', fields={'response': 'team', 'confidence': 'confidence', 'rationale': 'rationale',
                                 'function': 'answered_by', 'source': 'answer_source', 'job_id': 'job_id'}) }},
    timestamp '{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as enriched_at
from answered
