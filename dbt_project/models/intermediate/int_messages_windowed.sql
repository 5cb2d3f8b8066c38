-- Every message with its conversation context: for replies, the policy window they were sent
-- in (timed from the user's last inbound message, by Meta's timestamps); for inbound messages,
-- whether they start a turn, when the business answered, and whether the window expired
-- unanswered. Refused sends (failed outbound) are not replies and are left out.
with messages as (
    select *
    from {{ ref('stg_meta__conversation_messages') }}
    where not (direction = 'outbound' and message_status = 'failed')
),

ordered as (
    select
        messages.*,
        max(case when direction = 'inbound' then sent_at end) over w_before as last_inbound_at,
        min(case when direction = 'outbound' then sent_at end) over w_after as next_outbound_at,
        lag(direction) over w_order as previous_direction,
        lead(direction) over w_order as next_direction
    from messages
    window
        w_order as (partition by thread_id order by sent_at, message_id),
        w_before as (
            partition by thread_id order by sent_at, message_id
            rows between unbounded preceding and 1 preceding
        ),
        w_after as (
            partition by thread_id order by sent_at, message_id
            rows between 1 following and unbounded following
        )
)

select
    message_id,
    thread_id,
    platform,
    direction,
    message_type,
    is_echo,
    window_used,
    sent_at,
    (sent_at at time zone 'UTC')::date as sent_date,
    case
        when direction <> 'outbound' then null
        when last_inbound_at is not null and sent_at < last_inbound_at + interval '24 hours'
            then 'standard'
        when
            platform in ('messenger', 'instagram') and last_inbound_at is not null
            and sent_at < last_inbound_at + interval '7 days' then 'human_agent'
        else 'outside'
    end as reply_window,
    direction = 'inbound' and (previous_direction is distinct from 'inbound') as starts_turn,
    case
        when direction = 'inbound' and (previous_direction is distinct from 'inbound')
            then extract(epoch from next_outbound_at - sent_at)::numeric(18, 3)
    end as response_seconds,
    -- the last inbound before a reply (or the end) fixes when the 24-hour window closes
    direction = 'inbound' and (next_direction is distinct from 'inbound')
    and sent_at + interval '24 hours' <= {{ as_of() }}
    and (next_outbound_at is null or next_outbound_at >= sent_at + interval '24 hours')
        as window_expired_unanswered
from ordered
