-- The pre-existing EverReach tables the Meta data integrates with.
-- On a database where the EverReach app already created them, nothing is replaced:
-- tables are created only when absent, and the columns this project relies on are added
-- when missing.

create schema if not exists auth;

create table if not exists auth.users (
    id uuid primary key default gen_random_uuid(),
    email text,
    phone text,
    created_at timestamptz not null default now()
);
alter table auth.users add column if not exists email text;
alter table auth.users add column if not exists phone text;
alter table auth.users add column if not exists created_at timestamptz not null default now();

create table if not exists campaign (
    campaign_id uuid primary key default gen_random_uuid(),
    name text not null,
    created_at timestamptz not null default now()
);
-- Meta campaigns map onto EverReach campaigns through this id.
alter table campaign add column if not exists meta_campaign_id text;
alter table campaign add column if not exists meta_ad_account_id text;
alter table campaign add column if not exists source text not null default 'app';
alter table campaign add column if not exists updated_at timestamptz not null default now();
create unique index if not exists campaign_meta_campaign_id_key on campaign (meta_campaign_id);
-- Meta campaigns get EverReach campaign rows: make sure new rows get an id.
do $$
begin
    if (select column_default from information_schema.columns
        where table_schema = 'public' and table_name = 'campaign'
          and column_name = 'campaign_id') is null then
        alter table campaign alter column campaign_id set default gen_random_uuid();
    end if;
end
$$;

create table if not exists user_event (
    id bigserial primary key,
    user_id uuid references auth.users (id) on delete set null,
    etype text not null,
    source text not null default 'app',
    props jsonb not null default '{}'::jsonb,
    occurred_at timestamptz not null default now()
);
-- When the row was written (as opposed to when the event happened): incremental dbt
-- models read late-arriving events by this column.
-- A stable key per event for incremental models (filled for existing rows once).
alter table user_event add column if not exists id bigserial;
alter table user_event add column if not exists inserted_at timestamptz not null default now();

create index if not exists user_event_user_occurred_idx on user_event (user_id, occurred_at);
create index if not exists user_event_etype_occurred_idx on user_event (etype, occurred_at);
create index if not exists user_event_inserted_at_idx on user_event (inserted_at);
