"""Raw tables the marts read that no Dagster asset writes: declared as external assets so the
lineage from the app / the webhook receiver into the marts shows in the UI.

If another domain starts materializing one of these keys, drop it from here (two definitions
of one key cannot be merged).
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from everreach_pipelines.defs.dbt.translator import GROUP_NAME, OWNERS

#: The keys, for code that reports what it wrote to these tables (e.g. `everreach demo`).
USER_EVENT = AssetKey(["user_event"])
AUTH_USERS = AssetKey(["auth", "users"])
CONVERSATION_THREAD = AssetKey(["conversation_thread"])
CONVERSATION_MESSAGE = AssetKey(["conversation_message"])
META_CONVERSION_EVENT = AssetKey(["meta_conversion_event"])

_WRITTEN_OUTSIDE_DAGSTER = {
    USER_EVENT: "EverReach's single event stream (public.user_event), written by the app, "
    "by triggers on conversation_message and by CAPI delivery; read by the dbt marts.",
    AUTH_USERS: "EverReach users (auth.users), written by the app; the marts stitch "
    "messaging contacts and CAPI events to them.",
    CONVERSATION_THREAD: "Conversation threads (public.conversation_thread), written by "
    "the webhook receiver and the send endpoints.",
    CONVERSATION_MESSAGE: "Messages in and out (public.conversation_message), written by "
    "the webhook receiver and the send endpoints.",
    META_CONVERSION_EVENT: "Conversions API queue (public.meta_conversion_event), written "
    "by the receiver's intake and by database functions; the capi assets send it to Meta.",
}

external_source_specs = [
    AssetSpec(
        key=key,
        description=description,
        group_name=GROUP_NAME,
        owners=OWNERS,
        kinds={"postgres"},
        metadata={"table": ".".join(key.path) if len(key.path) > 1 else f"public.{key.path[0]}"},
    )
    for key, description in _WRITTEN_OUTSIDE_DAGSTER.items()
]
