{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['person_id', 'occurred_at']},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- One unified, typed stream of touchpoints, each with the person it belongs to (a user, or a
-- contact's stable anonymous identity) and the campaign it points to when known: what the
-- journey and attribution models build on (the `touchpoints` mart is a view of it).
-- Incremental: events written since the cutoff, plus the events of threads whose identity
-- evidence changed since then (a contact stitched to a user moves into the user's journey);
-- of those, only rows whose content changed are rewritten.
with contacts as (
    select * from {{ ref('int_contacts_identified') }}
),

events as (
    select * from {{ ref('int_user_events_classified') }}
    {% if is_incremental() %}
        where inserted_at >= {{ incremental_cutoff('inserted_at') }}
        union all
        select classified.*
        from {{ ref('int_user_events_classified') }} as classified
        where
            classified.inserted_at < {{ incremental_cutoff('inserted_at') }}
            and classified.thread_id in (
                select thread_id from contacts
                where identity_updated_at >= {{ incremental_cutoff('inserted_at') }}
            )
    {% endif %}
),

ads as (
    select * from {{ ref('int_ads_mapped_to_campaigns') }}
),

campaigns as (
    select * from {{ ref('stg_everreach__campaigns') }}
),

users as (
    select * from {{ ref('stg_auth__users') }}
),

-- CAPI: external_id equal to a user id, in clear or SHA-256. Matched from the distinct ids
-- of this batch, so a batch without CAPI events never hashes the user table.
capi_ids as (
    select distinct capi_external_id from events where capi_external_id is not null
),

capi_candidates as (
    select capi_ids.capi_external_id, users.user_id
    from capi_ids
    inner join users on users.user_id = {{ safe_uuid('capi_ids.capi_external_id') }}
    union all
    select capi_ids.capi_external_id, users.user_id
    from capi_ids
    inner join users on users.user_id_sha256 = lower(capi_ids.capi_external_id)
),

capi_matches as (
    select distinct on (capi_external_id) capi_external_id, user_id
    from capi_candidates
    order by capi_external_id, user_id
),

joined as (
    select
        events.*,
        contacts.person_id as contact_person_id,
        contacts.anonymous_id as contact_anonymous_id,
        contacts.identity_method as contact_identity_method,
        contacts.identity_updated_at,
        capi_matches.user_id as capi_matched_user_id,
        ads.campaign_id as ad_campaign_id,
        ads.meta_campaign_id as ad_meta_campaign_id,
        by_meta_id.campaign_id as meta_id_campaign_id,
        coalesce(utm_by_meta_id.campaign_id, utm_by_uuid.campaign_id) as utm_campaign_id
    from events
    left join contacts on contacts.thread_id = events.thread_id
    left join ads on ads.meta_ad_id = events.meta_ad_id
    left join campaigns as by_meta_id on by_meta_id.meta_campaign_id = events.meta_campaign_id
    -- utm_campaign may carry the Meta campaign id or the EverReach campaign uuid
    -- (one equi-join each: an OR in a join condition defeats hash joins)
    left join campaigns as utm_by_meta_id
        on events.meta_campaign_id is null and utm_by_meta_id.meta_campaign_id = events.utm_campaign
    left join campaigns as utm_by_uuid
        on
            events.meta_campaign_id is null
            and utm_by_uuid.campaign_id = {{ safe_uuid('events.utm_campaign') }}
    left join capi_matches on capi_matches.capi_external_id = events.capi_external_id
),

final as (
    select
        event_id,
        coalesce(
            event_user_id, capi_user_id, contact_person_id, capi_matched_user_id,
            {{ stable_uuid("'event:' || event_id::text") }}
        ) as person_id,
        coalesce(
            event_user_id, capi_user_id,
            case when contact_identity_method <> 'anonymous' then contact_person_id end,
            capi_matched_user_id
        ) as user_id,
        case
            when event_user_id is not null then 'event_user'
            when capi_user_id is not null then 'capi_user'
            when contact_identity_method is not null then contact_identity_method
            when capi_matched_user_id is not null then 'capi_external_id'
            else 'anonymous_event'
        end as identity_method,
        contact_anonymous_id as anonymous_id,
        touchpoint_type,
        event_type,
        platform,
        message_direction,
        occurred_at,
        inserted_at,
        thread_id,
        coalesce(ad_campaign_id, meta_id_campaign_id, utm_campaign_id) as campaign_id,
        coalesce(meta_campaign_id, ad_meta_campaign_id) as meta_campaign_id,
        meta_ad_id,
        utm_source,
        utm_medium,
        utm_campaign,
        is_conversion,
        conversion_value,
        currency,
        order_id
    from joined
),

hashed as (
    select
        final.*,
        md5(row(
            person_id, user_id, identity_method, anonymous_id, touchpoint_type, event_type,
            platform, message_direction, occurred_at, inserted_at, thread_id, campaign_id,
            meta_campaign_id, meta_ad_id, utm_source, utm_medium, utm_campaign,
            is_conversion, conversion_value, currency, order_id
        )::text) as content_hash
    from final
)

select
    hashed.*,
    -- when this row was (re)written: person-level models downstream recompute exactly the
    -- persons whose touchpoints were written after their own last load
    now() as dbt_loaded_at,
    -- the time the row had before this rewrite (the day-grain marts recompute that day too:
    -- a conversion that moved or stopped being one leaves it)
    {% if is_incremental() %}
        (
            select loaded.occurred_at from {{ this }} as loaded
            where loaded.event_id = hashed.event_id
        )
    {% else %}
        null::timestamptz
    {% endif %} as previous_occurred_at
from hashed
{% if is_incremental() %}
-- rows re-read by the lookback that did not change are left alone (not rewritten); a
-- subquery per row: one probe of the event_id index each, never a scan of the table
    where hashed.content_hash is distinct from (
        select loaded.content_hash from {{ this }} as loaded
        where loaded.event_id = hashed.event_id
    )
{% endif %}
