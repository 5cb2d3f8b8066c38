"""Migrations on an empty database, re-applied, on a pre-existing EverReach schema, and conflicts."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from everreach.warehouse import database, migrate

META_TABLES = {
    "conversation_thread",
    "conversation_message",
    "messaging_policy_window",
    "message_delivery_event",
    "meta_platform_config",
    "social_media_post",
    "social_post_insights",
    "social_account_insights",
    "ad_performance",
    "meta_conversion_event",
    "meta_webhook_event",
}


@pytest.fixture
def empty_database(server_url: str):
    name = f"everreach_mig_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server_url, name)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _schema_fingerprint(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            select table_schema, table_name, column_name, data_type, is_nullable,
                   coalesce(column_default, '')
            from information_schema.columns
            where table_schema in ('public', 'auth')
            union all
            select n.nspname, c.conrelid::regclass::text, c.conname, c.contype::text, '',
                   pg_get_constraintdef(c.oid)
            from pg_constraint c join pg_namespace n on n.oid = c.connamespace
            where n.nspname in ('public', 'auth')
            union all
            select 'trigger', tgrelid::regclass::text, tgname, '', '', ''
            from pg_trigger where not tgisinternal
            order by 1, 2, 3
            """
        ).fetchall()


def test_empty_database_gets_every_table_and_rerun_changes_nothing(empty_database: str):
    applied = migrate.upgrade(empty_database)
    assert applied == [f"{m.version}_{m.name}" for m in migrate.available_migrations()]
    before = _schema_fingerprint(empty_database)

    assert migrate.upgrade(empty_database) == []
    assert _schema_fingerprint(empty_database) == before

    with psycopg.connect(empty_database) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'public'"
            )
        }
        assert META_TABLES <= tables
        assert {"campaign", "user_event"} <= tables
        assert conn.execute("select to_regclass('auth.users')").fetchone()[0] is not None
        functions = {
            r[0]
            for r in conn.execute(
                "select proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                "where n.nspname = 'public'"
            )
        }
        assert {
            "is_in_messaging_window",
            "log_message_as_event",
            "update_thread_timestamp",
        } <= functions
    assert all(applied for _, applied in migrate.status(empty_database))


def test_preexisting_everreach_tables_are_kept_and_extended(empty_database: str):
    # The EverReach app's own tables, as they exist before this project: no Meta columns.
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("create schema auth")
        conn.execute("create table auth.users (id uuid primary key, email text)")
        conn.execute("create table campaign (campaign_id uuid primary key, name text not null)")
        conn.execute(
            "create table user_event (user_id uuid references auth.users(id), etype text not null,"
            " source text not null, props jsonb, occurred_at timestamptz not null)"
        )
        uid = uuid.uuid4()
        conn.execute("insert into auth.users values (%s, 'a@example.com')", (uid,))
        conn.execute("insert into campaign values (gen_random_uuid(), 'Spring sale')")
        conn.execute("insert into user_event values (%s, 'signup', 'app', '{}', now())", (uid,))

    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("select name from campaign").fetchone()[0] == "Spring sale"
        assert conn.execute("select count(*) from user_event").fetchone()[0] == 1
        cols = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_name = 'campaign'"
            )
        }
        assert {"meta_campaign_id", "updated_at"} <= cols
        # the Meta campaign id is unique
        conn.execute("update campaign set meta_campaign_id = '123'")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into campaign (name, meta_campaign_id) values ('x', '123')")


def test_edited_migration_is_a_conflict_with_a_clear_message(empty_database: str):
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("update everreach_schema_migrations set checksum = 'x' where version = '0002'")
    with pytest.raises(migrate.MigrationConflictError, match="0002_meta_tables was changed"):
        migrate.upgrade(empty_database)


def test_unknown_applied_migration_is_a_conflict(empty_database: str):
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("insert into everreach_schema_migrations values ('9999', 'future', 'x')")
    with pytest.raises(migrate.MigrationConflictError, match="newer EverReach"):
        migrate.status(empty_database)
