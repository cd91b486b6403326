{#- dbt's `relationships`, with the named argument `run_window` (see run_window_condition):
    fails for every row whose `column_name` is set and names no row of `to` by `field`,
    among the rows this run reads (every row without the argument). -#}
{% test references(model, column_name, to, field, run_window=none) %}
    select child.{{ column_name }} as from_field
    from {{ model }} as child
    where
        child.{{ column_name }} is not null
        and {{ run_window_condition(run_window) }}
        and not exists (
            select 1
            from {{ to }} as parent
            where parent.{{ field }} = child.{{ column_name }}
        )
{% endtest %}
