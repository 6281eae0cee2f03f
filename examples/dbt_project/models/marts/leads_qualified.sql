-- Every lead qualified by the `lead-qualifier` Function, one sutro_run call per row
-- (identical inputs are answered once and cached, so rebuilding costs nothing).
with answered as (
    select
        lead_id,
        company,
        region,
        query,
        {{ sutro_sql.sutro_run('lead-qualifier', {'query': 'query', 'region': 'region'}) }} as answer
    from {{ ref('stg_leads') }}
)

select
    lead_id,
    company,
    region,
    query,
    {{ sutro_sql.unpack('answer', fields={'response': 'qualification', 'confidence': 'confidence', 'rationale': 'rationale'}) }}
from answered
