{#-
  sutro_run(function, inputs, **options): one Function answer per row.

  `inputs` maps the Function's input names to SQL expressions over the row:

      {{ sutro_sql.sutro_run('ticket-triage', {'subject': 'subject', 'body': 'body'}) }} AS triage

  renders `sutro_run('ticket-triage', {'subject': subject, 'body': body}) AS triage`,
  a STRUCT(response, output, confidence, predictions, rationale, usage, error);
  take fields out of it with `sutro_sql.unpack`. Keyword options pass through
  as named parameters, e.g. `on_error='null'` or `cache=false`.
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
  }{{ sutro_sql.named_options(kwargs) }})
{%- endmacro %}
