"""The BI role reads the marts and nothing else."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import conninfo

from everreach.warehouse.bi import create_bi_role, drop_bi_role


@pytest.fixture
def bi_role(database_url: str, db: psycopg.Connection):
    db.execute("create schema if not exists marts")
    db.execute("drop table if exists marts.campaign_roas")
    db.execute("create table marts.campaign_roas (campaign text, roas numeric)")
    db.execute("insert into marts.campaign_roas values ('Spring', 2.5)")
    db.execute("insert into campaign (name) values ('raw row')")
    role = f"bi_test_{uuid.uuid4().hex[:8]}"
    create_bi_role(database_url, role, password="pw-" + uuid.uuid4().hex)
    parts = conninfo.conninfo_to_dict(database_url)
    parts.update(user=role)
    parts.pop("password", None)
    yield role, conninfo.make_conninfo(**parts)
    drop_bi_role(database_url, role)


def test_bi_role_reads_marts_only(bi_role, db):
    role, url = bi_role
    # trust auth (embedded / local CI): the password is set but not needed to connect
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("select campaign, roas from marts.campaign_roas").fetchall()
        assert rows == [("Spring", Decimal("2.5"))]
        for query in (
            "select * from public.campaign",
            "select * from public.ad_performance",
            "select * from auth.users",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into marts.campaign_roas values ('x', 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table marts.mine (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table public.mine (x int)")


def test_tables_dbt_creates_later_are_readable(bi_role, db):
    role, url = bi_role
    db.execute("drop table if exists marts.rebuilt")
    db.execute("create table marts.rebuilt as select 1 as x")  # like a dbt rebuild
    with psycopg.connect(url) as conn:
        assert conn.execute("select x from marts.rebuilt").fetchone() == (1,)
    db.execute("drop table marts.rebuilt")


def test_mart_views_over_other_schemas_are_readable(bi_role, db):
    # like marts.user_journeys, a view over intermediate.int_journey_steps: the view reads with
    # its owner's rights, the table behind it stays closed to the BI role
    role, url = bi_role
    db.execute("create schema if not exists intermediate")
    db.execute("drop view if exists marts.steps_view")
    db.execute("drop table if exists intermediate.steps_behind")
    db.execute("create table intermediate.steps_behind as select 7 as step")
    db.execute("create view marts.steps_view as select step from intermediate.steps_behind")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select step from marts.steps_view").fetchone() == (7,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from intermediate.steps_behind")
    db.execute("drop view marts.steps_view")
    db.execute("drop table intermediate.steps_behind")


def test_rerunning_create_role_is_safe(bi_role, database_url):
    role, _ = bi_role
    assert create_bi_role(database_url, role)[0] == f"altered role {role}"
