{#- Post-hook of every table this project builds (staging, intermediate, marts, utilities):
    the build keeps the table's statistics itself, so autovacuum stays off it. A view has
    neither: nothing is run for one.

    Each run writes these tables whole (a new table renamed in, or, for the incremental fact,
    a fresh copy of the published one; see prepare_candidate) and analyzes them inside the
    model's transaction, so a later model plans with real row counts. Autovacuum would only
    repeat that work after the commit, and while it holds a table it blocks the build and
    the publish: an `analyze`, `create index` or drop of that table waits a deadlock_timeout
    for it to be cancelled, and at the end of its run it can wait for the build's own open
    transaction while the build waits for it, which PostgreSQL ends as a deadlock and fails
    the model. Nothing here needs vacuuming while the build writes it: the tables are
    replaced, not updated, and a wraparound vacuum still runs if one is due, whatever the
    setting says. Published, they keep it off: the next publish replaces them, and an
    autovacuum still on one then held up the drop of the retired schema for a
    deadlock_timeout. `pmcost publish` resets it only on a merged history (the daily fact
    with a long history), which each publish updates in place. -#}
{% macro own_statistics() -%}
    {%- if model.config.materialized != 'view' -%}
        alter table {{ this }} set ({{ no_autovacuum() }});
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}


{#- The storage parameters that keep autovacuum off a table and its TOAST table. -#}
{% macro no_autovacuum() -%}
    autovacuum_enabled = false, toast.autovacuum_enabled = false
{%- endmacro %}
