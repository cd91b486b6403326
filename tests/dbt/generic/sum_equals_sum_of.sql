{#- Reconciliation test: sum(`column_name`) of this model (rows matching `where`) equals
    sum(`compare_column`) of `compare_model` (rows matching `compare_where`), to the cent.
    Returns one row, with both totals, when they differ. -#}
{% test sum_equals_sum_of(model, column_name, compare_model, compare_column, where="true", compare_where="true") %}
    with

    this_side as (
        select coalesce(sum({{ column_name }}), 0) as total
        from {{ model }}
        where {{ where }}
    ),

    other_side as (
        select coalesce(sum({{ compare_column }}), 0) as total
        from {{ compare_model }}
        where {{ compare_where }}
    )

    select
        this_side.total as model_total,
        other_side.total as compare_total
    from this_side
    cross join other_side
    where this_side.total <> other_side.total
{% endtest %}
