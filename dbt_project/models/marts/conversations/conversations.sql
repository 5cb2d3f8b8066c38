-- One row per conversation thread: volumes, response times, replies inside / outside the
-- policy windows, windows that expired unanswered, and whether an ad started it. Contacts
-- never matched to a user keep their stable anonymous identity (person_id).
with messages as (
    select * from {{ ref('int_messages_windowed') }}
),

per_thread as (
    select
        thread_id,
        count(*) filter (where direction = 'inbound') as messages_in,
        count(*) filter (where direction = 'outbound') as messages_out,
        min(sent_at) filter (where direction = 'inbound') as first_inbound_at,
        -- the first inbound message always starts the first turn
        (array_agg(response_seconds order by sent_at, message_id) filter (where starts_turn))[1]
            as first_response_seconds,
        percentile_cont(0.5) within group (order by response_seconds)
        filter (where starts_turn and response_seconds is not null) as median_response_seconds,
        count(*) filter (where reply_window = 'standard') as replies_in_standard_window,
        count(*) filter (where reply_window = 'human_agent') as replies_in_human_agent_window,
        count(*) filter (where reply_window = 'outside') as replies_outside_window,
        count(*) filter (where window_expired_unanswered) as windows_expired_unanswered
    from messages
    group by thread_id
)

select
    threads.thread_id,
    threads.platform,
    threads.business_account_id,
    contacts.person_id,
    contacts.user_id,
    contacts.identity_method,
    threads.started_from_ad,
    threads.referral_ad_id,
    ads.campaign_id,
    threads.first_message_at,
    threads.last_message_at,
    coalesce(per_thread.messages_in, 0) as messages_in,
    coalesce(per_thread.messages_out, 0) as messages_out,
    per_thread.first_response_seconds,
    per_thread.median_response_seconds::numeric(18, 3) as median_response_seconds,
    coalesce(per_thread.replies_in_standard_window, 0) as replies_in_standard_window,
    coalesce(per_thread.replies_in_human_agent_window, 0) as replies_in_human_agent_window,
    coalesce(per_thread.replies_outside_window, 0) as replies_outside_window,
    coalesce(per_thread.windows_expired_unanswered, 0) as windows_expired_unanswered
from {{ ref('stg_meta__conversation_threads') }} as threads
inner join {{ ref('int_contacts_identified') }} as contacts on contacts.thread_id = threads.thread_id
left join per_thread on per_thread.thread_id = threads.thread_id
left join {{ ref('int_ads_mapped_to_campaigns') }} as ads on ads.meta_ad_id = threads.referral_ad_id
