-- A confidence is a probability: every enriched row has one in [0, 1].
with confidences as (
    select 'leads_qualified' as model, lead_id as id, confidence from {{ ref('leads_qualified') }}
    union all
    select 'ticket_facts', ticket_id, confidence from {{ ref('ticket_facts') }}
    union all
    select 'ticket_triage', ticket_id, confidence from {{ ref('ticket_triage') }}
    union all
    select 'ticket_priorities', ticket_id, confidence from {{ ref('ticket_priorities') }}
)

select *
from confidences
where confidence is null or confidence < 0 or confidence > 1
