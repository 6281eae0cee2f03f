{#-
  unpack(answer, fields=none, prefix='', output=none): the answer struct's fields as columns.

      {{ sutro_sql.unpack('triage', fields=['response', 'confidence'], prefix='triage_') }}

  renders `struct_extract(triage, 'response') AS "triage_response", ...`; `fields`
  may also map field -> column name: {'response': 'team', 'confidence': 'team_confidence'}.
  `answer` is a column holding a sutro_run answer (compute sutro_run once in a
  CTE, then unpack the column: unpacking the call itself would repeat it).
  `fields` defaults to response, confidence, rationale and error.
  `output` maps an extraction Function's output fields to DuckDB types, e.g.
  {'order_id': 'varchar', 'amount': 'double'}, read from the answer's JSON `output`.
-#}
{% macro unpack(answer, fields=none, prefix='', output=none) -%}
  {%- set columns = [] -%}
  {%- set fields = fields if fields is not none else ['response', 'confidence', 'rationale', 'error'] -%}
  {%- set names = fields if fields is mapping else dict(zip(fields, fields)) -%}
  {%- for field, name in names.items() -%}
    {%- do columns.append("struct_extract(" ~ answer ~ ", " ~ sutro_sql.literal(field) ~ ") AS "
                          ~ sutro_sql.quote_identifier(prefix ~ name)) -%}
  {%- endfor -%}
  {%- for field, type in (output or {}).items() -%}
    {%- if not modules.re.match('^[A-Za-z][A-Za-z0-9_ ]*(\\([0-9, ]*\\))?(\\[\\])?$', type) -%}
      {{ exceptions.raise_compiler_error("sutro_sql.unpack: " ~ type | tojson ~ " is not a DuckDB type name") }}
    {%- endif -%}
    {%- set path = '$."' ~ field.replace('"', '\\"') ~ '"' -%}
    {%- do columns.append("TRY_CAST(json_extract_string(struct_extract(" ~ answer ~ ", 'output'), "
                          ~ sutro_sql.literal(path) ~ ") AS " ~ type ~ ") AS " ~ sutro_sql.quote_identifier(prefix ~ field)) -%}
  {%- endfor -%}
  {{ columns | join(",\n    ") }}
{%- endmacro %}
