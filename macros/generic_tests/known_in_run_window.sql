{#- For a validity-interval table: fails for every row whose `column_name` is NULL in an
    interval that holds on a day this run computes (history_start_date() to the as-of
    date). A missing price long before the data is not an error; a missing price on a day
    the marts or the history show is. -#}
{% test known_in_run_window(model, column_name) %}
    select *
    from {{ model }}
    where {{ column_name }} is null and {{ overlaps_run_window() }}
{% endtest %}
