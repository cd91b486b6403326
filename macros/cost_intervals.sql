{#- Effective-dated reference data (the VPS price list, the cost assumptions) as validity
    intervals. Each input row is one captured version of one effective-dated row: it applies
    from its effective_date, and the captured version holds on [valid_from_date,
    valid_to_date) (macro snapshot_validity). The value on a day is the row with the latest
    effective_date on or before the day among the versions that hold that day.

    The result has one row per partition (e.g. plan code and billing cycle) and interval
    [valid_from_date, valid_to_date) during which that answer does not change, covering all
    time from -infinity to infinity; NULL values where no row is in force yet (a day before
    the first effective date). Adjacent intervals with the same answer are merged, so the
    table stays as small as the price history: it changes rarely. -#}
{% macro effective_dated_intervals(versions, partition_columns, value_columns) -%}
    {%- set partition = partition_columns | join(', ') -%}
    {%- set answer = value_columns + ['effective_date'] -%}
    {%- set segment_order = ('partition by ' ~ partition ~ ' ' if partition else '') ~ 'order by segment_start' -%}
    with

    versions as (
        select * from {{ versions }}
    ),

    boundaries as (
        select {{ partition ~ ', ' if partition }}cast('-infinity' as date) as boundary_date
        from versions
        union
        select {{ partition ~ ', ' if partition }}valid_from_date from versions
        union
        select {{ partition ~ ', ' if partition }}valid_to_date from versions
        union
        select {{ partition ~ ', ' if partition }}effective_date from versions
    ),

    segments as (
        select
            {{ partition ~ ', ' if partition }}boundary_date as segment_start,
            lead(boundary_date, 1, cast('infinity' as date)) over (
                {{ 'partition by ' ~ partition if partition }} order by boundary_date
            ) as segment_end
        from boundaries
    ),

    ranked as (
        select
            {%- for column in partition_columns %}
            segments.{{ column }},
            {%- endfor %}
            segments.segment_start,
            segments.segment_end,
            {%- for column in answer %}
            versions.{{ column }},
            {%- endfor %}
            row_number() over (
                partition by {% for column in partition_columns %}segments.{{ column }}, {% endfor -%}
                segments.segment_start
                order by versions.effective_date desc nulls last
            ) as recency_rank
        from segments
        left join versions
            on
                {%- for column in partition_columns %}
                segments.{{ column }} = versions.{{ column }} and
                {%- endfor %}
                {{ interval_holds_on('segments.segment_start', 'versions') }}
                and segments.segment_start >= versions.effective_date
        where segments.segment_start < segments.segment_end
    ),

    in_force as (
        select
            {{ partition ~ ', ' if partition }}segment_start,
            segment_end,
            {%- for column in answer %}
            {{ column }},
            lag({{ column }}) over ({{ segment_order }}) as previous_{{ column }},
            {%- endfor %}
            row_number() over ({{ segment_order }}) as segment_number
        from ranked
        where recency_rank = 1
    ),

    changes as (
        select
            {{ partition ~ ', ' if partition }}segment_start,
            segment_end,
            {{ answer | join(', ') }},
            case
                when segment_number = 1 then 1
                {%- for column in answer %}
                when ({{ column }} is distinct from previous_{{ column }}) then 1
                {%- endfor %}
                else 0
            end as starts_interval
        from in_force
    ),

    numbered as (
        select
            {{ partition ~ ', ' if partition }}segment_start,
            segment_end,
            {{ answer | join(', ') }},
            sum(starts_interval) over ({{ segment_order }}) as interval_number
        from changes
    )

    select
        {{ partition ~ ', ' if partition }}min(segment_start) as valid_from_date,
        max(segment_end) as valid_to_date,
        {%- for column in answer %}
        min({{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from numbered
    group by {{ partition ~ ', ' if partition }}interval_number
{%- endmacro %}


{#- The days of this run's window (history_start_date() to as_of_date()) that fall in
    [valid_from, valid_to), as a set-returning expression for `cross join lateral ... as
    days (economics_day)`: linear in the output, whatever the interval's length. -#}
{% macro window_days(valid_from, valid_to) -%}
    generate_series(
        greatest({{ valid_from }}, {{ history_start_date() }}),
        least({{ valid_to }} - 1, {{ as_of_date() }}),
        interval '1 day'
    )
{%- endmacro %}


{#- A filter for the tests of the cost intervals: the interval holds on at least one day of
    this run's window, so an unpriced period long before the data is not an error. -#}
{% macro overlaps_run_window() -%}
    valid_to_date > {{ history_start_date() }} and valid_from_date <= {{ as_of_date() }}
{%- endmacro %}


{#- The rows of a validity interval table that hold on `day` (a SQL date expression;
    default the as-of date), optionally of `relation` (its alias, in a join). -#}
{% macro interval_holds_on(day=none, relation=none) -%}
    {%- set day = day if day is not none else as_of_date() -%}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {{ day }} >= {{ prefix }}valid_from_date and {{ day }} < {{ prefix }}valid_to_date
{%- endmacro %}


{#- How an invoice names a resource, and how the application's resources are matched to it:
    the hostname or IP address as text, trimmed and lowercased; for a resource of the
    application without one, its id (the provider's instance id is the other name an
    invoice may use). -#}
{% macro resource_key(reference, resource_id=none) -%}
    {%- if resource_id is none -%}
        lower(trim({{ reference }}))
    {%- else -%}
        coalesce(lower(trim({{ reference }})), cast({{ resource_id }} as text))
    {%- endif -%}
{%- endmacro %}


{#- Aggregate: the tenant of a group of resources when every row has the same one (none
    NULL), else NULL; `counted` is what counts the group's rows (`*`, or the column that is
    NULL on an outer join's missing side). min = max rather than count(distinct ...) = 1:
    a DISTINCT aggregate sorts each group's rows, a cost paid per group, and the
    reconciliation has hundreds of thousands of one-resource groups at 100,000 tenants.
    uuid has no min/max, so they compare its text. -#}
{% macro only_tenant(tenant_column, counted='*') -%}
    cast(
        case
            when
                min(cast({{ tenant_column }} as text)) = max(cast({{ tenant_column }} as text))
                and count({{ tenant_column }}) = count({{ counted }})
                then min(cast({{ tenant_column }} as text))
        end as uuid
    )
{%- endmacro %}
