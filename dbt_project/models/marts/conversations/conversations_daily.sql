-- Conversations per day (UTC) and channel: volumes, response times of the turns that started
-- that day, replies inside / outside the windows, windows that expired unanswered, and new
-- conversations (those started from ads among them).
with messages as (
    select * from {{ ref('int_messages_windowed') }}
),

threads as (
    select * from {{ ref('stg_meta__conversation_threads') }}
),

message_days as (
    select
        sent_date as activity_date,
        platform,
        count(*) filter (where direction = 'inbound') as messages_in,
        count(*) filter (where direction = 'outbound') as messages_out,
        count(distinct thread_id) as active_threads,
        count(*) filter (where starts_turn and response_seconds is not null) as answered_turns,
        percentile_cont(0.5) within group (order by response_seconds)
        filter (where starts_turn and response_seconds is not null) as median_response_seconds,
        count(*) filter (where reply_window in ('standard', 'human_agent')) as replies_inside_window,
        count(*) filter (where reply_window = 'outside') as replies_outside_window,
        count(*) filter (where window_expired_unanswered) as windows_expired_unanswered
    from messages
    group by sent_date, platform
),

new_threads as (
    select
        (first_message_at at time zone 'UTC')::date as activity_date,
        platform,
        count(*) as new_conversations,
        count(*) filter (where started_from_ad) as new_conversations_from_ads
    from threads
    where first_message_at is not null
    group by 1, 2
)

select
    coalesce(message_days.activity_date, new_threads.activity_date) as activity_date,
    coalesce(message_days.platform, new_threads.platform) as platform,
    coalesce(message_days.messages_in, 0) as messages_in,
    coalesce(message_days.messages_out, 0) as messages_out,
    coalesce(message_days.active_threads, 0) as active_threads,
    coalesce(new_threads.new_conversations, 0) as new_conversations,
    coalesce(new_threads.new_conversations_from_ads, 0) as new_conversations_from_ads,
    coalesce(message_days.answered_turns, 0) as answered_turns,
    message_days.median_response_seconds::numeric(18, 3) as median_response_seconds,
    coalesce(message_days.replies_inside_window, 0) as replies_inside_window,
    coalesce(message_days.replies_outside_window, 0) as replies_outside_window,
    coalesce(message_days.windows_expired_unanswered, 0) as windows_expired_unanswered
from message_days
full outer join new_threads
    on
        new_threads.activity_date = message_days.activity_date
        and new_threads.platform = message_days.platform
