{#- Post-hook: (re)create one of the migration guide's Step 4 indexes, under the guide's name.
    dbt swaps a rebuilt table in by renaming, and the old table's indexes keep their names
    until it is dropped after the commit; so the old index of that name is dropped first (it
    belongs to the backup table by then) and the index is created on the new table. -#}
{% macro guide_index(name, columns, where=none) -%}
    drop index if exists {{ adapter.quote(this.schema) }}.{{ adapter.quote(name) }};
    create index {{ adapter.quote(name) }} on {{ this }} ({{ columns | join(', ') }})
    {%- if where %} where {{ where }}{% endif %}
{%- endmacro %}
