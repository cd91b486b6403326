{#- Where the published models are written by this invocation. Outside production (the
    `dev` and `ci` targets) the target's own schema: built directly, no candidate, no
    publish. In production (target `prod`, var production_target), var publish_stage:
    `published` (the default) names the published schema, so plain dbt commands pointed at
    production (`dbt show`, `dbt test`, `dbt docs generate`, `mf query`) read what
    dashboards read; `candidate` (what pmcost passes to its builds) names
    `<schema>_candidate`, which `pmcost publish` switches in. -#}
{% macro publication_schema() -%}
    {%- if not is_production() -%}
        {{ return(target.schema) }}
    {%- endif -%}
    {%- set stage = var('publish_stage', 'published') | string | trim -%}
    {%- if stage == 'published' -%}
        {{ return(target.schema) }}
    {%- elif stage == 'candidate' -%}
        {{ return(target.schema ~ '_candidate') }}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var publish_stage = '" ~ stage ~ "': use published (what readers see) or "
            ~ "candidate (a production build, then `pmcost publish`)"
        ) }}
    {%- endif -%}
{%- endmacro %}


{#- Whether this invocation runs against production: target `prod` (var production_target). -#}
{% macro is_production() -%}
    {{ return(target.name == var('production_target', 'prod')) }}
{%- endmacro %}


{#- on-run-start: production's published relations change only through a publish. A plain
    `dbt build`, `run` or `snapshot` pointed at production would write them in place,
    untested and one by one: it stops, naming the two ways that keep write-audit-publish.
    (`dbt seed` stays allowed: the seeds are built in place in every target.) -#}
{% macro refuse_direct_production_build() %}
    {%- if execute and flags.WHICH in ('build', 'run', 'snapshot')
            and is_production() and publication_schema() == target.schema -%}
        {{ exceptions.raise_compiler_error(
            "`dbt " ~ flags.WHICH ~ " --target " ~ target.name ~ "` would write production's "
            ~ "published tables in place. Production is built by `pmcost refresh` (build, "
            ~ "test, publish), or by `dbt " ~ flags.WHICH ~ " --target " ~ target.name
            ~ " --vars '{publish_stage: candidate}'` followed by `pmcost publish`. Your own "
            ~ "work goes to the dev target, the default. Nothing was written."
        ) }}
    {%- endif %}
    select 'production untouched' as pmcost_check
{% endmacro %}


{#- Where this invocation's snapshots are written: the published snapshot schema, with
    `_candidate` appended for a candidate build. -#}
{% macro snapshot_schema() -%}
    {%- set published = published_snapshot_schema() -%}
    {{ return(published if publication_schema() == target.schema else published ~ '_candidate') }}
{%- endmacro %}


{#- The schema the published snapshots live in: `<target schema>_snapshots`. -#}
{% macro published_snapshot_schema() -%}
    {{ return(target.schema ~ '_snapshots') }}
{%- endmacro %}


{#- on-run-start of `dbt build` / `dbt run`:
    - start a fresh candidate schema when the run rebuilds every published model (a
      candidate left by an earlier run may hold a failed build's rows, and a publish needs
      every published model from one invocation anyway); a narrower selection, e.g. one mart
      while developing, keeps the others;
    - write this invocation's publication request into the schema's comment (JSON: invocation
      id, as-of date, the roles that get USAGE when it is published, the guard thresholds,
      the tables to merge), so
      `--vars` overrides reach the publish step, which also checks that the run_results.json
      it reads belong to this candidate;
    - carry the published incremental history into it when the incremental model is
      selected, so an incremental run continues the published table instead of starting
      over, and a failed run never touches the published one. A model whose meta names its
      `run_window_column` is carried without the rows of the days this run writes again
      (history_start_date() to the as-of date): they would be copied only to be deleted.
      When the published table holds more days outside that window than the run writes and
      reads, only the days the build reads are carried (those before the window back to
      meta `read_days_var` days before the as-of date), and the request names the table:
      the publish merges the run's days into the published table and switches that in
      (pmcost/history_merge.py), so a daily run's cost does not grow with the history.
      Indexes are not copied: the model's post-hook creates them on the candidate table.
      Nor are the published table's CHECK constraints: the copy gets the model's contract as
      the code states it now (carried_contract), so a rule added since applies to this run's
      rows, and the carried rows, checked when they were written, are not checked again. -#}
{% macro prepare_candidate() %}
    {%- if execute and flags.WHICH in ('build', 'run') and publication_schema() != target.schema -%}
        {%- set candidate = publication_schema() -%}
        {%- set candidate_schema = api.Relation.create(database=target.database, schema=candidate) -%}
        {%- do refuse_shrinking_full_refresh(candidate) -%}
        {%- set published_models = [] -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.schema == candidate -%}
            {%- do published_models.append(node.unique_id) -%}
        {%- endfor -%}
        {%- if published_models | reject('in', selected_resources) | list | length == 0 -%}
            {#- the whole published set is rebuilt: start from an empty candidate -#}
            {%- do adapter.drop_schema(candidate_schema) -%}
        {%- endif -%}
        {%- do adapter.create_schema(candidate_schema) -%}
        {%- set merges = [] -%}
        {%- for node in selected_histories(candidate) if not flags.FULL_REFRESH -%}
            {%- set published = adapter.get_relation(node.database, target.schema, node.alias) -%}
            {%- if published is not none -%}
                {%- set copy = api.Relation.create(
                    database=node.database, schema=candidate, identifier=node.alias, type='table'
                ) -%}
                {%- if adapter.get_relation(node.database, candidate, node.alias) is not none -%}
                    {%- do run_query("drop table " ~ copy ~ " cascade") -%}
                    {%- do adapter.cache_dropped(copy) -%}
                {%- endif -%}
                {%- set meta = node.config.meta or {} -%}
                {%- set window_column = meta.get('run_window_column') -%}
                {%- set kept = '' -%}
                {%- if window_column -%}
                    {%- set column = adapter.quote(window_column) -%}
                    {%- set last = modules.datetime.date.fromisoformat(as_of_date_value()) -%}
                    {%- set window_days = (last - modules.datetime.date.fromisoformat(history_start_value())).days + 1 -%}
                    {#- the days before the run's window that the build reads (var named by
                        meta read_days_var, at least the day before) -#}
                    {%- set read_days = [var(meta.get('read_days_var'), 0) | int if meta.get('read_days_var') else 0, 1] | max -%}
                    {%- set carried_from = (last - modules.datetime.timedelta(days=read_days)).isoformat() -%}
                    {#- published days outside the run's window (min and max read off the index) -#}
                    {%- set outside_days = run_query(
                        "select coalesce(greatest(" ~ history_start_date() ~ " - min(" ~ column ~ "), 0)"
                        ~ " + greatest(max(" ~ column ~ ") - " ~ as_of_date() ~ ", 0), 0) from " ~ published
                    ).columns[0].values()[0] | int -%}
                    {%- if outside_days > window_days + read_days -%}
                        {#- a history longer than what the run writes and reads: carry the days
                            it reads, and the publish merges the run's days into the published
                            table (pmcost/history_merge.py) -#}
                        {%- set kept = " where " ~ column ~ " >= cast('" ~ carried_from ~ "' as date)"
                            ~ " and " ~ column ~ " < " ~ history_start_date() -%}
                        {%- do merges.append({
                            'table': node.alias,
                            'column': window_column,
                            'from': history_start_value(),
                            'to': as_of_date_value(),
                            'carried_from': carried_from,
                        }) -%}
                    {%- else -%}
                        {#- a short history: copy its days outside the window, cheaper than
                            merging the run's days at the publish -#}
                        {%- set kept = " where " ~ column ~ " < " ~ history_start_date()
                            ~ " or " ~ column ~ " > " ~ as_of_date() -%}
                    {%- endif -%}
                {%- endif -%}
                {%- do run_query(
                    "create table " ~ copy ~ " (like " ~ published
                    ~ " including defaults) with (" ~ no_autovacuum() ~ "); "
                    ~ "insert into " ~ copy ~ " select * from " ~ published ~ kept ~ "; "
                    ~ carried_contract(node, copy)
                    ~ "analyze " ~ copy
                ) -%}
                {%- do adapter.cache_added(copy) -%}
                {{ log("carried " ~ published ~ " into the candidate build", info=true) }}
            {%- endif -%}
        {%- endfor -%}
        {%- set request = {
            'invocation_id': invocation_id,
            'published_schema': target.schema,
            'as_of_date': as_of_date_value(),
            'app_schema': var('app_schema'),
            'usage_roles': mart_roles().values() | list,
            'guards': {
                'max_source_change': var('publish_max_source_change') | float,
                'max_tenant_change': var('publish_max_tenant_change') | float,
                'max_total_change': var('publish_max_total_change') | float,
                'max_history_loss': var('publish_max_history_loss') | float,
            },
            'merges': merges,
        } -%}
        {%- do run_query(
            "comment on schema " ~ adapter.quote(candidate) ~ " is "
            ~ "'" ~ (tojson(request) | replace("'", "''")) ~ "'"
        ) -%}
    {%- endif %}
    select 'candidate ready' as pmcost_check
{% endmacro %}


{#- The published incremental models (histories) this invocation builds into `candidate`. -#}
{% macro selected_histories(candidate) -%}
    {%- set found = [] -%}
    {%- for node in graph.nodes.values()
            if node.resource_type == 'model'
            and node.schema == candidate
            and node.config.materialized == 'incremental'
            and node.unique_id in selected_resources -%}
        {%- do found.append(node) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{#- A full refresh rebuilds an incremental history from the run's first day: a published
    history that starts earlier would lose its older days. Refuse before anything is written,
    naming the day to start from (`pmcost refresh --full-refresh` passes it itself). -#}
{% macro refuse_shrinking_full_refresh(candidate) %}
    {%- if flags.FULL_REFRESH -%}
        {%- for node in selected_histories(candidate)
                if (node.config.meta or {}).get('run_window_column') -%}
            {%- set published = adapter.get_relation(node.database, target.schema, node.alias) -%}
            {%- if published is not none -%}
                {%- set first = run_query(
                    "select min(" ~ adapter.quote(node.config.meta['run_window_column']) ~ ") from " ~ published
                ).columns[0].values()[0] -%}
                {%- if first is not none and first | string < history_start_value() -%}
                    {{ exceptions.raise_compiler_error(
                        "--full-refresh would rebuild " ~ published ~ " from " ~ history_start_value()
                        ~ " (the run's first day) only, and its published history starts on " ~ first
                        ~ ": the days before would be lost. Rebuild every day with --vars "
                        ~ "'{history_start: " ~ '"' ~ first ~ '"' ~ "}' (pmcost refresh --full-refresh "
                        ~ "--history-start " ~ first ~ "; without --history-start it starts there "
                        ~ "itself), or leave --full-refresh out. Nothing was written."
                    ) }}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}


{#- The model's contract on the candidate's copy of a published incremental table, as one
    `alter table` statement (empty when the model has no contract): its CHECK constraints,
    column and model level, added NOT VALID (they hold for every row the run inserts; the
    carried rows passed them when they were written, and checking them again would make a
    daily run's cost grow with the history), and its not_null columns set NOT NULL (the
    copy has the published table's already, which PostgreSQL then does not scan again).
    Names as dbt gives them: a model-level constraint's own, PostgreSQL's for the rest. -#}
{% macro carried_contract(node, relation) -%}
    {%- set clauses = [] -%}
    {%- if (node.config.contract or {}).get('enforced') -%}
        {%- for column in node.columns.values() -%}
            {%- for constraint in column.constraints or [] -%}
                {%- if constraint.type == 'check' and constraint.expression -%}
                    {%- do clauses.append("add check (" ~ constraint.expression ~ ") not valid") -%}
                {%- elif constraint.type == 'not_null' -%}
                    {%- do clauses.append("alter column " ~ adapter.quote(column.name) ~ " set not null") -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for constraint in node.constraints or [] if constraint.type == 'check' and constraint.expression -%}
            {%- set name = "constraint " ~ adapter.quote(constraint.name) ~ " " if constraint.name else "" -%}
            {%- do clauses.append("add " ~ name ~ "check (" ~ constraint.expression ~ ") not valid") -%}
        {%- endfor -%}
    {%- endif -%}
    {{- "alter table " ~ relation ~ " " ~ clauses | join(", ") ~ "; " if clauses else "" -}}
{%- endmacro %}


{#- on-run-start: the analytics layer must never block the application's own migrations. A
    view over an application table does (`alter table ... drop column` fails on it): drop any
    view in this project's schemas that reads an application table (earlier versions of the
    project built stg_app__billing_analytics as one; it is ephemeral now). -#}
{% macro release_application_tables() %}
    {%- if execute and flags.WHICH in ('build', 'run') -%}
        {%- set views = run_query(
            "select distinct view_ns.nspname, view.relname"
            ~ " from pg_depend as dep"
            ~ " join pg_rewrite as rule on rule.oid = dep.objid"
            ~ " join pg_class as view on view.oid = rule.ev_class and view.relkind = 'v'"
            ~ " join pg_namespace as view_ns on view_ns.oid = view.relnamespace"
            ~ " join pg_class as used on used.oid = dep.refobjid"
            ~ " join pg_namespace as used_ns on used_ns.oid = used.relnamespace"
            ~ " where dep.classid = 'pg_rewrite'::regclass"
            ~ " and used_ns.nspname = '" ~ var('app_schema') | replace("'", "''") ~ "'"
            ~ " and view_ns.nspname <> used_ns.nspname"
            ~ " and (view_ns.nspname = '" ~ target.schema ~ "'"
            ~ " or view_ns.nspname like '" ~ target.schema ~ "\_%')"
        ) -%}
        {%- for row in views.rows -%}
            {%- set view = api.Relation.create(
                database=target.database, schema=row[0], identifier=row[1], type='view'
            ) -%}
            {%- do run_query("drop view " ~ view) -%}
            {%- do adapter.cache_dropped(view) -%}
            {{ log("dropped " ~ view ~ ": a view over an application table blocks its migrations", info=true) }}
        {%- endfor -%}
    {%- endif %}
    select 'application tables free' as pmcost_check
{% endmacro %}
