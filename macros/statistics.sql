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


{#- Pre-hook of the tenant-day models whose plans join intervals to the run's days: JIT
    compilation off for the model's own transaction (`set local`; the server's settings and
    every other statement are left as they are). PostgreSQL starts JIT from the plan's
    estimated cost, and these plans' estimates are far above their work: a date series or a
    range join to the run's few days is estimated at hundreds of rows per interval, so a
    statement of under a second is costed in the millions, over jit_inline_above_cost and
    jit_optimize_above_cost. LLVM then spent 0.2-0.25 s compiling each of them (PostgreSQL 15,
    100,000 tenants), a quarter to a third of the statement, which the compiled
    expressions did not win back. -#}
{% macro without_jit() -%}
    set local jit = off
{%- endmacro %}
