"""The app's own tables (group `app`): `user_event` and `auth.users`, written by the EverReach
app (and `user_event` also by the receiver's triggers and CAPI delivery), read by the marts.

Nothing here runs; the tables are declared so the lineage from the app into the marts shows.
"""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.tables import written_elsewhere

GROUP = "app"
OWNERS = ["team:app"]

user_event = written_elsewhere(
    "user_event",
    written_by="the EverReach app, the triggers on conversation_message and CAPI delivery",
    description="EverReach's single event stream: every touchpoint of every user.",
    group=GROUP,
    owners=OWNERS,
)
auth_users = written_elsewhere(
    "auth.users",
    written_by="the EverReach app",
    description="EverReach users; the marts stitch messaging contacts and CAPI events to them.",
    group=GROUP,
    owners=OWNERS,
)

defs = dg.Definitions(assets=[user_event, auth_users])

__all__ = ["defs"]
