"""Raw tables the marts read that no Dagster asset writes: declared as external assets so the
lineage from the app / the webhook receiver into the marts shows in the UI.

If another domain starts materializing one of these keys, drop it from here (two definitions
of one key cannot be merged).
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from everreach_pipelines.defs.dbt.translator import GROUP_NAME, OWNERS

_WRITTEN_OUTSIDE_DAGSTER = {
    ("user_event",): "EverReach's single event stream (public.user_event), written by the app, "
    "by triggers on conversation_message and by CAPI delivery; read by the dbt marts.",
    ("auth", "users"): "EverReach users (auth.users), written by the app; the marts stitch "
    "messaging contacts and CAPI events to them.",
    ("conversation_thread",): "Conversation threads (public.conversation_thread), written by "
    "the webhook receiver and the send endpoints.",
    ("conversation_message",): "Messages in and out (public.conversation_message), written by "
    "the webhook receiver and the send endpoints.",
    ("meta_conversion_event",): "Conversions API queue (public.meta_conversion_event), written "
    "by the receiver's intake and by database functions; the capi assets send it to Meta.",
}

external_source_specs = [
    AssetSpec(
        key=AssetKey(list(path)),
        description=description,
        group_name=GROUP_NAME,
        owners=OWNERS,
        kinds={"postgres"},
        metadata={"table": ".".join(path) if len(path) > 1 else f"public.{path[0]}"},
    )
    for path, description in _WRITTEN_OUTSIDE_DAGSTER.items()
]
