-- Support tickets, cleaned: one row per ticket with text to enrich.
select
    ticket_id,
    created_at,
    channel,
    lower(trim(customer_email)) as customer_email,
    trim(subject) as subject,
    trim(body) as body
from {{ ref('raw_tickets') }}
where nullif(trim(body), '') is not null
