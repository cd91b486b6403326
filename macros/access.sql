{#- Access control for the marts: who may read them, and which rows.

    Roles (names set by vars): analysts and the application service read, administrators
    may do anything. Row Level Security: the application service sees the rows of the tenant
    named by the session setting app.current_tenant_id, and nothing when it is unset; analysts
    and administrators see every row. dbt rebuilds a table under a new name and swaps it in,
    so RLS and policies are applied by a post-hook on every build, inside dbt's transaction:
    no reader ever sees the new table unprotected. The table owner (dbt's role) is exempt, as
    PostgreSQL makes owners without FORCE ROW LEVEL SECURITY, so dbt's tests see every row. -#}

{% macro mart_roles() -%}
    {{ return({
        'analysts': var('analyst_role'),
        'application': var('app_service_role'),
        'administrators': var('admin_role'),
    }) }}
{%- endmacro %}


{#- The grants of every mart: SELECT for analysts and the application service, every table
    privilege for administrators (the guide's "ALL"), nothing for anyone else. -#}
{% macro mart_grants() -%}
    {%- set roles = mart_roles() -%}
    {%- set grants = {'select': [roles.analysts, roles.application, roles.administrators]} -%}
    {%- for privilege in ['insert', 'update', 'delete', 'truncate', 'references', 'trigger'] -%}
        {%- do grants.update({privilege: [roles.administrators]}) -%}
    {%- endfor -%}
    {{ return(grants) }}
{%- endmacro %}


{#- The grants of Finance's reconciliation marts: analysts and administrators only; the
    application service and PUBLIC get nothing. -#}
{% macro finance_grants() -%}
    {%- set grants = mart_grants() -%}
    {%- do grants.update({'select': [mart_roles().analysts, mart_roles().administrators]}) -%}
    {{ return(grants) }}
{%- endmacro %}


{#- on-run-start: fail fast when a role the grants name does not exist; (re)create the
    function the tenant policy calls in the schema the marts are built in, and give the roles
    USAGE on it when that is the published schema (dbt's grants cover tables only). -#}
{% macro prepare_access() %}
    {%- if execute and flags.WHICH in ('build', 'run') -%}
        {%- set roles = mart_roles().values() | list -%}
        {%- set found = run_query(
            "select rolname from pg_roles where rolname in ('" ~ roles | join("', '") ~ "')"
        ).columns[0].values() -%}
        {%- set missing = [] -%}
        {%- for role in roles if role not in found -%}
            {%- do missing.append(role) -%}
        {%- endfor -%}
        {%- if missing -%}
            {{ exceptions.raise_compiler_error(
                "role(s) " ~ missing | join(", ") ~ " missing: the marts are granted to them. "
                ~ "Create them (e.g. `create role " ~ missing[0] ~ " nologin`) or point the vars "
                ~ "analyst_role / app_service_role / admin_role at existing roles"
            ) }}
        {%- endif -%}
        {%- set schema = adapter.quote(publication_schema()) -%}
        create schema if not exists {{ schema }};
        {#- Schema usage here, once, not in each mart's post-hook: two transactions updating
            the schema's ACL at once fail with "tuple concurrently updated". A candidate
            schema gets it only when it is published (pmcost publish), so nobody reads an
            unpublished build. -#}
        {%- if publication_schema() == target.schema %}
        grant usage on schema {{ schema }}
            to {% for role in roles %}{{ adapter.quote(role) }}{{ ", " if not loop.last }}{% endfor %};
        {%- endif %}
        {#- The policies call this function by oid: it lives in the schema of the tables it
            protects and moves with them when the candidate is published. -#}
        create or replace function {{ schema }}.current_tenant_id()
        returns uuid
        language plpgsql
        stable
        as $fn$
        declare
            raw text := nullif(trim(current_setting('{{ var("tenant_setting") }}', true)), '');
        begin
            if raw is null then
                return null;  -- unset: matches no row (fail closed)
            end if;
            if raw !~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$' then
                raise exception '{{ var("tenant_setting") }} = "%" is not a tenant id', raw
                    using errcode = '22023',
                    hint = 'set it to the tenant''s companies.id (a uuid), or reset it';
            end if;
            return raw::uuid;
        end;
        $fn$;
        comment on function {{ schema }}.current_tenant_id() is
            'The tenant of this session ({{ var("tenant_setting") }}) for row level security; NULL when unset.';
    {%- endif %}
    select 'access ready' as pmcost_check
{% endmacro %}


{#- post-hook: RLS and policies on a mart table. A model configured with
    meta tenant_scoped: false has no tenant rows (the reconciliation): tenant-scoped roles
    see nothing of it. -#}
{% macro secure_mart(tenant_column='tenant_id') -%}
    {%- set roles = mart_roles() -%}
    {%- if not model.config.get('meta', {}).get('tenant_scoped', true) -%}
        {%- set tenant_column = none -%}
    {%- endif -%}
    {%- set schema = adapter.quote(this.schema) -%}
    alter table {{ this }} enable row level security;
    drop policy if exists internal_read_all on {{ this }};
    create policy internal_read_all on {{ this }} for select
        to {{ adapter.quote(roles.analysts) }}, {{ adapter.quote(roles.administrators) }}
        using (true);
    drop policy if exists administrators_write on {{ this }};
    create policy administrators_write on {{ this }} for all
        to {{ adapter.quote(roles.administrators) }}
        using (true) with check (true);
    drop policy if exists tenant_isolation on {{ this }};
    {%- if tenant_column %}
    create policy tenant_isolation on {{ this }} for select
        to {{ adapter.quote(roles.application) }}
        using ({{ adapter.quote(tenant_column) }} = {{ schema }}.current_tenant_id());
    {%- endif %}
{%- endmacro %}
