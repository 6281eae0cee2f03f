{#-
  sutro_run(function, inputs, **options): one Function answer per row.

  `inputs` maps the Function's input names to SQL expressions over the row:

      {{ sutro_sql.sutro_run('ticket-triage', {'subject': 'subject', 'body': 'body'}) }} AS triage

  renders `sutro_run('ticket-triage', {'subject': subject, 'body': body}) AS triage`,
  a STRUCT(response, output, confidence, predictions, rationale, usage, error);
  take fields out of it with `sutro_sql.unpack`. Keyword options pass through
  as named parameters, e.g. `on_error='null'` or `cache=false`, and so does a
  cascade: `escalate_to='ticket-triage-strong', escalate_below=0.8`, or
  `escalate_to=..., target_accuracy=0.95, calibrate_on=ref('reviewed_tickets')`
  (a relation or a SELECT returning the inputs and a `label` column).
-#}
{% macro sutro_run(function, inputs) -%}
  {{- sutro_sql.check_materialization('sutro_run') -}}
  {%- if inputs is not mapping or inputs | length == 0 -%}
    {{ exceptions.raise_compiler_error("sutro_sql.sutro_run(" ~ function | tojson ~ "): inputs must map the Function's input names to column expressions, e.g. {'body': 'body'}") }}
  {%- endif -%}
  sutro_run({{ sutro_sql.literal(function) }}, {
    {%- for name, expression in inputs.items() -%}
      {{ sutro_sql.literal(name) }}: {{ expression }}{{ ", " if not loop.last }}
    {%- endfor -%}
  }{{ sutro_sql.named_options(sutro_sql.cascade_options(kwargs)) }})
{%- endmacro %}


{#- Keyword options with `calibrate_on` given as a relation turned into the query text it needs. -#}
{% macro cascade_options(options) -%}
  {%- set calibrate_on = options.get('calibrate_on') -%}
  {%- if calibrate_on is not none and calibrate_on is not string -%}
    {%- set options = dict(options, calibrate_on="SELECT * FROM " ~ calibrate_on) -%}
  {%- endif -%}
  {{- return(options) -}}
{%- endmacro %}
