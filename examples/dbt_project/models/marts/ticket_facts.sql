-- Facts pulled out of every ticket by the `ticket-extractor` Function in one batch job,
-- joined back to the tickets by ticket_id.
select
    tickets.ticket_id,
    tickets.created_at,
    tickets.customer_email,
    facts.order_id,
    facts.amount,
    facts.email as mentioned_email,
    facts.sentiment,
    facts.urgent,
    facts.confidence_score as confidence
from {{ ref('stg_tickets') }} as tickets
join {{ sutro_sql.sutro_batch('ticket-extractor', ref('stg_tickets'), columns=['body'], id_column='ticket_id') }} as facts
    using (ticket_id)
