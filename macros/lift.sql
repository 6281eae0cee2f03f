{#-
  The automatic lift for dbt models: a table or incremental model whose SQL calls
  `sutro_run` on more distinct inputs than the plugin's `auto_batch_threshold`
  (default 1000) is answered by ONE batch job instead of a real-time call per row,
  and returns the same values (`source` 'job' and the job's id in each answer).

  dbt-duckdb runs a model's SQL itself, so this package overrides the adapter's
  `create_table_as` (which the table and incremental materializations use): it
  hands the compiled SQL to the `_sutro_lift` function the plugin registers, which
  runs the job and returns the SQL that reads its answers, then builds the table as
  dbt-duckdb does. A model without `sutro_run` is left alone, and the plugin's
  `auto_batch: false` (or SUTRO_SQL_AUTO_BATCH=0) turns the lift off.

  dbt uses a package's override of its own macros only when the project says so,
  in dbt_project.yml (put your project's name first):

      dispatch:
        - macro_namespace: dbt
          search_order: ['my_project', 'sutro_sql', 'dbt']
-#}
{% macro duckdb__create_table_as(temporary, relation, compiled_code, language='sql', partitioned_by=none, sorted_by=none) -%}
  {%- set code = sutro_sql.lifted(compiled_code) if language == 'sql' else compiled_code -%}
  {{ return(dbt.duckdb__create_table_as(temporary, relation, code, language, partitioned_by=partitioned_by, sorted_by=sorted_by)) }}
{%- endmacro %}


{#- The model's SQL with large `sutro_run` calls lifted to one batch job (at run time only). -#}
{% macro lifted(sql) -%}
  {%- if not execute or 'sutro_run' not in (sql | lower) -%}
    {{ return(sql) }}
  {%- endif -%}
  {%- set result = run_query('select _sutro_lift(' ~ sutro_sql.literal(sql) ~ ')') -%}
  {{ return(result.columns[0].values()[0]) }}
{%- endmacro %}
