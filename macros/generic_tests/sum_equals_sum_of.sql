{#- Reconciliation test: sum(`column_name`) of this model (rows matching `where`) equals
    sum(`compare_column`) of `compare_model` (rows matching `compare_where`, and with
    `compare_on_as_of_date` only the validity intervals that hold on the as-of date), to the
    cent. Returns one row, with both totals, when they differ. The as-of filter is rendered
    when the test runs: a date written into `compare_where` would be fixed at parse time. -#}
{% test sum_equals_sum_of(model, column_name, compare_model, compare_column, where="true", compare_where="true", compare_on_as_of_date=false) %}
    with

    this_side as (
        select coalesce(sum({{ column_name }}), 0) as total
        from {{ model }}
        where {{ where }}
    ),

    other_side as (
        select coalesce(sum({{ compare_column }}), 0) as total
        from {{ compare_model }}
        where {{ compare_where }}{% if compare_on_as_of_date %} and {{ interval_holds_on() }}{% endif %}
    )

    select
        this_side.total as model_total,
        other_side.total as compare_total
    from this_side
    cross join other_side
    where this_side.total <> other_side.total
{% endtest %}
