{#- Validity intervals [valid_from_date, valid_to_date) of each partition (e.g. a resource)
    tile all time: both bounds are set, the first starts at -infinity, each ends where the
    next starts (no gap, no overlap), the last ends at infinity, none is empty. Returns each
    offending interval with what is wrong. (A NULL bound is one of its cases, so an interval
    table needs no not_null test of its own, a second scan.)

    It is also the table's primary-key test, for the key (partition columns, valid_from_date):
    a NULL in a partition column is a case of its own, and two intervals of a partition with
    the same valid_from_date cannot both pass (sorted together, the first would end where it
    starts, or the second start before the first ends). A primary_key test beside it would
    sort the same rows again. -#}
{% test intervals_cover_all_time(model, partition_by=[]) %}
    {%- set partition = partition_by | join(', ') -%}
    with

    ordered as (
        select
            {{ partition ~ ', ' if partition }}valid_from_date,
            valid_to_date,
            lag(valid_to_date) over interval_order as previous_valid_to_date,
            lead(valid_from_date) over interval_order as next_valid_from_date
        from {{ model }}
        window interval_order as (
            {{ 'partition by ' ~ partition if partition }} order by valid_from_date
        )
    ),

    checked as (
        select
            {{ partition ~ ', ' if partition }}valid_from_date,
            valid_to_date,
            case
                {%- if partition_by %}
                    when {% for column in partition_by -%}
                        {{ column }} is null{{ ' or ' if not loop.last }}
                    {%- endfor %}
                        then 'interval of no {{ partition }} (NULL key)'
                {%- endif %}
                when valid_from_date is null or valid_to_date is null
                    then 'interval without a bound (NULL date)'
                when valid_from_date >= valid_to_date then 'empty or reversed interval'
                when previous_valid_to_date is null and valid_from_date <> '-infinity'
                    then 'first interval does not start at -infinity'
                when previous_valid_to_date is not null and previous_valid_to_date <> valid_from_date
                    then 'gap or overlap with the previous interval'
                when next_valid_from_date is null and valid_to_date <> 'infinity'
                    then 'last interval does not end at infinity'
            end as problem
        from ordered
    )

    select * from checked
    where problem is not null
{% endtest %}
