{#-
  Quoting for everything the sutro_sql macros put into SQL. A Function name,
  a field name or a query string becomes a single-quoted literal with every
  quote doubled, and an identifier becomes a double-quoted one with every
  double quote doubled, so no value can break out of its literal.
  (dbt's `string_literal` and `adapter.quote` do not escape.)
-#}

{% macro literal(value) -%}
  {%- if value is none -%}
    NULL
  {%- elif value is boolean -%}
    {{ 'true' if value else 'false' }}
  {%- elif value is number -%}
    {{ value }}
  {%- else -%}
    '{{ (value | string).replace("'", "''") }}'
  {%- endif -%}
{%- endmacro %}


{% macro quote_identifier(name) -%}
  "{{ (name | string).replace('"', '""') }}"
{%- endmacro %}


{#- `, name := value` for each keyword option, in a stable order. -#}
{% macro named_options(options) -%}
  {%- for name in options | sort -%}
    {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', name) -%}
      {{ exceptions.raise_compiler_error("sutro_sql: option name " ~ name | tojson ~ " is not a plain identifier") }}
    {%- endif -%}
    , {{ name }} := {{ sutro_sql.literal(options[name]) }}
  {%- endfor -%}
{%- endmacro %}


{#-
  Enrichment models must be tables or incremental: a view that calls a Python
  UDF cannot be read by a connection that has not registered sutro_sql
  (a BI tool, the duckdb CLI), so a view is refused at compile time.
-#}
{% macro check_materialization(macro_name) -%}
  {%- if execute and model is defined and model is mapping and model.get('resource_type') == 'model'
        and config.get('materialized') == 'view' -%}
    {{ exceptions.raise_compiler_error(
        "sutro_sql." ~ macro_name ~ " in model " ~ model.get('name') ~ ": materialize it as a table or incremental, "
        ~ "not a view (a view calling a Sutro Function cannot be read by tools that did not register sutro_sql)") }}
  {%- endif -%}
{%- endmacro %}
