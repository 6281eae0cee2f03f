{#-
  sutro_batch(function, relation_or_query, columns=none, id_column=none, **options):
  a table of answers from one batch job, to use in a FROM or JOIN.

      select t.*, f.sentiment, f.confidence_score
      from {{ ref('stg_tickets') }} t
      join {{ sutro_sql.sutro_batch('ticket-extractor', ref('stg_tickets'),
                                    columns={'body': 'body'}, id_column='ticket_id') }} f
        using (ticket_id)

  `relation_or_query` is a relation (ref/source) or a read-only SELECT text.
  `columns` picks the Function inputs: a list of column names, or a mapping of
  input name -> SQL expression; none sends every column. `id_column` is carried
  into the result so answers join back exactly (without it, results carry
  `row_id`, the row's ordinal). Keyword options (job_priority, job_name,
  description, dry_run, and a cascade's escalate_to, escalate_below,
  target_accuracy, calibrate_on as for sutro_run) pass through as named
  parameters. The query runs on its
  own cursor, so it can read committed tables and views only (models and seeds
  are), never TEMP tables.
-#}
{% macro sutro_batch(function, relation_or_query, columns=none, id_column=none) -%}
  {{- sutro_sql.check_materialization('sutro_batch') -}}
  {%- set query = sutro_sql.batch_query(relation_or_query, columns, id_column) -%}
  sutro_batch({{ sutro_sql.literal(function) }}, {{ sutro_sql.literal(query) }}
    {%- if id_column is not none %}, id_column := {{ sutro_sql.literal(id_column) }}{% endif -%}
    {{ sutro_sql.named_options(sutro_sql.cascade_options(kwargs)) }})
{%- endmacro %}


{#- The SELECT a batch runs: the chosen columns (plus the id) of a relation or query. -#}
{% macro batch_query(relation_or_query, columns=none, id_column=none) -%}
  {%- if relation_or_query is string -%}
    {%- set source = "(" ~ relation_or_query ~ ") AS sutro_input" -%}
  {%- else -%}
    {%- set source = relation_or_query | string -%}
  {%- endif -%}
  {%- if columns is none -%}
    {%- if relation_or_query is string -%}
      {{ relation_or_query }}
    {%- else -%}
      SELECT * FROM {{ source }}
    {%- endif -%}
  {%- else -%}
    {%- set selected = [] -%}
    {%- if columns is mapping -%}
      {%- set names = columns.keys() | list -%}
      {%- for name, expression in columns.items() -%}
        {%- do selected.append(expression ~ " AS " ~ sutro_sql.quote_identifier(name)) -%}
      {%- endfor -%}
    {%- elif columns is string -%}
      {{ exceptions.raise_compiler_error("sutro_sql.sutro_batch: columns must be a list of column names or a mapping of input name to expression, not a string") }}
    {%- else -%}
      {%- set names = columns | list -%}
      {%- for name in columns -%}
        {%- do selected.append(sutro_sql.quote_identifier(name)) -%}
      {%- endfor -%}
    {%- endif -%}
    {%- if id_column is not none and id_column not in names -%}
      {%- do selected.insert(0, sutro_sql.quote_identifier(id_column)) -%}
    {%- endif -%}
    SELECT {{ selected | join(", ") }} FROM {{ source }}
  {%- endif -%}
{%- endmacro %}
