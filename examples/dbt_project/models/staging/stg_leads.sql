-- Inbound sales leads: what the prospect asked for, and where they are.
select
    lead_id,
    created_at,
    trim(company) as company,
    upper(region) as region,
    trim(query) as query
from {{ ref('raw_leads') }}
