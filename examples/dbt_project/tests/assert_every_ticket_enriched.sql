-- Answers join back by id: every staged ticket has exactly one row in each ticket model.
with tickets as (select ticket_id from {{ ref('stg_tickets') }})

select 'ticket_facts' as model, count(*) as missing
from tickets
where ticket_id not in (select ticket_id from {{ ref('ticket_facts') }})
having count(*) > 0
union all
select 'ticket_triage', count(*)
from tickets
where ticket_id not in (select ticket_id from {{ ref('ticket_triage') }})
having count(*) > 0
union all
select 'ticket_priorities', count(*)
from tickets
where ticket_id not in (select ticket_id from {{ ref('ticket_priorities') }})
having count(*) > 0
