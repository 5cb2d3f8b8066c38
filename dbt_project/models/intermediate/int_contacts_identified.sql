-- analyzed as soon as it is built: `touchpoints` plans its incremental read from its statistics
{{ config(post_hook="{{ analyze_if_without_statistics() }}") }}

-- One row per messaging contact (thread): the EverReach user it is stitched to when the
-- evidence allows, else a stable anonymous identity. Evidence, strongest first:
--   thread_user     the receiver / app already linked the thread to a user
--   referral_ref    an m.me / ig.me / Click-to-Messenger `ref` carrying an existing user id
--   whatsapp_phone  a WhatsApp wa_id equal to exactly one user's normalized phone
with threads as (
    select * from {{ ref('stg_meta__conversation_threads') }}
),

-- refs seen on referral events of the thread (a referral can arrive after the first message)
event_refs as (
    select distinct on (thread_id)
        thread_id,
        referral_ref
    from {{ ref('stg_everreach__user_events') }}
    where event_type = 'ad_referral' and thread_id is not null and referral_ref is not null
    order by thread_id, occurred_at desc, event_id desc
),

-- users read twice, not through one shared CTE (one used twice is materialized in full: every
-- column of a million users, the SHA-256 of each id among them): here only the users some
-- ref names (looked up by id), below only those with a phone
ref_users as (
    select user_id, created_at from {{ ref('stg_auth__users') }}
    where user_id in (
        select {{ safe_uuid('referral_ref') }} from threads
        union
        select {{ safe_uuid('referral_ref') }} from event_refs
    )
),

phones as (
    -- a phone shared by two users proves nothing
    select phone_normalized, min(user_id::text)::uuid as user_id, max(created_at) as created_at
    from {{ ref('stg_auth__users') }}
    -- (a user without a phone has no normalized one: skips the regexp for most users)
    where phone is not null and phone_normalized is not null
    group by phone_normalized
    having count(*) = 1
),

evidence as (
    select
        threads.thread_id,
        threads.platform,
        threads.business_account_id,
        threads.contact_id,
        threads.started_from_ad,
        threads.updated_at,
        threads.user_id as thread_user_id,
        ref_users.user_id as ref_user_id,
        ref_users.created_at as ref_user_created_at,
        phones.user_id as phone_user_id,
        phones.created_at as phone_user_created_at
    from threads
    left join event_refs on event_refs.thread_id = threads.thread_id
    left join ref_users
        on ref_users.user_id = {{ safe_uuid('coalesce(threads.referral_ref, event_refs.referral_ref)') }}
    left join phones
        on
            threads.platform = 'whatsapp'
            and phones.phone_normalized = {{ normalize_phone('threads.contact_id') }}
),

resolved as (
    select
        thread_id,
        platform,
        business_account_id,
        contact_id,
        started_from_ad,
        coalesce(thread_user_id, ref_user_id, phone_user_id) as user_id,
        case
            when thread_user_id is not null then 'thread_user'
            when ref_user_id is not null then 'referral_ref'
            when phone_user_id is not null then 'whatsapp_phone'
            else 'anonymous'
        end as identity_method,
        {{ stable_uuid("'contact:' || platform || ':' || business_account_id || ':' || contact_id") }}
            as anonymous_id,
        -- when the evidence last changed: incremental models re-resolve these threads' events
        greatest(updated_at, ref_user_created_at, phone_user_created_at) as identity_updated_at
    from evidence
)

select
    *,
    coalesce(user_id, anonymous_id) as person_id
from resolved
