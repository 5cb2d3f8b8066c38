-- First start of the compose Postgres: the Dagster instance gets its own database next to
-- the warehouse (POSTGRES_DB), so Dagster's tables never mix with the raw and dbt tables.
create database dagster;
