-- Provenance of the ticket_routing cascade: a row is escalated exactly when the
-- stronger Function answered it.
select ticket_id, answered_by, escalated
from {{ ref('ticket_routing') }}
where escalated <> (answered_by = 'ticket-triage-strong')
