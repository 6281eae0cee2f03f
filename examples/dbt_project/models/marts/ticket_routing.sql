-- Tickets routed by a cascade: `ticket-triage` answers every ticket, and the answers it
-- gives with less than 0.5 confidence are answered again by `ticket-triage-strong` (with
-- more reviewed examples here; a large model in production). `escalated` and `answered_by`
-- (provenance) say which.
-- The first stage's answers are the ones ticket_triage computed: from the answer cache.
-- depends_on: {{ ref('ticket_triage') }}

with routed as (
    select
        ticket_id,
        {{ sutro_sql.sutro_run('ticket-triage', {'subject': 'subject', 'body': 'body'},
                               escalate_to='ticket-triage-strong', escalate_below=0.5) }} as routing
    from {{ ref('stg_tickets') }}
)

select
    ticket_id,
    {{ sutro_sql.unpack('routing', fields={'response': 'team', 'confidence': 'confidence', 'escalated': 'escalated',
                                         'function': 'answered_by', 'source': 'answer_source'}) }}
from routed
