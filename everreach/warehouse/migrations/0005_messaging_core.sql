-- Messaging core: who sent each outbound message, the webhook events that are not messages
-- or receipts (observed events), Messenger user_ref identities, and set-based triggers.

-- Who sent an outbound message: through the send API (the JWT subject and the role or
-- claim that allowed it), as an echo of a send made elsewhere (the Meta app id that sent
-- it; null when a person wrote it in Meta's inbox), or from the WhatsApp Business app
-- on a coexistence number.
alter table conversation_message add column if not exists sent_via text
    check (sent_via in ('api', 'echo', 'business_app'));
alter table conversation_message add column if not exists sent_by text;
alter table conversation_message add column if not exists sent_by_role text;

-- When Meta last told us the contact's profile name (the newest name wins, whatever order
-- webhooks arrive in).
alter table conversation_thread add column if not exists contact_name_at timestamptz;

-- Every webhook event that is neither a conversation message nor a receipt/status, typed by
-- `kind` (see everreach_pipelines/defs/messaging/README.md for the vocabulary): optins,
-- handover, app roles, policy enforcement, message edits, WhatsApp calls, template status,
-- user preferences, account notices, and fields Meta adds later. One row per distinct event.
create table if not exists messaging_observed_event (
    id bigserial primary key,
    platform text not null check (platform in ('messenger', 'instagram', 'whatsapp')),
    kind text not null,
    business_account_id text not null,        -- Page id, IG account id, phone_number_id or WABA id
    contact_id text,                          -- PSID, IGSID, wa_id when the event names one
    user_ref text,                            -- Messenger plugin identity when there is no PSID
    external_id text,                         -- the id the event is about: mid/wamid, call, template
    thread_id uuid references conversation_thread (thread_id) on delete set null,
    occurred_at timestamptz not null,
    payload jsonb not null default '{}'::jsonb,
    webhook_event_id bigint references meta_webhook_event (id) on delete set null,
    dedup_key text not null unique,
    created_at timestamptz not null default now()
);
create index if not exists messaging_observed_event_kind_idx
    on messaging_observed_event (platform, kind, occurred_at);
create index if not exists messaging_observed_event_external_idx
    on messaging_observed_event (platform, external_id) where external_id is not null;

-- Messenger's plugin identities (checkbox plugin optins, chat plugin guests): events that
-- carry a `user_ref` instead of a PSID. Meta ties one to a PSID later (`prior_message`).
create table if not exists messaging_user_ref (
    platform text not null default 'messenger'
        check (platform in ('messenger', 'instagram', 'whatsapp')),
    business_account_id text not null,
    user_ref text not null,
    contact_id text,
    first_seen_at timestamptz not null,
    last_seen_at timestamptz not null,
    tied_at timestamptz,
    updated_at timestamptz not null default now(),
    primary key (platform, business_account_id, user_ref)
);

-- Fails the statement (and so the webhook body being applied) with a reason: used where a
-- body cannot be applied yet, e.g. a Messenger edit whose message has not arrived.
create or replace function messaging_fail(p_reason text)
returns void
language plpgsql
as $$
begin
    raise exception '%', p_reason using errcode = 'P0001';
end;
$$;

-- Open or extend windows from many user actions at once (Meta's timestamps). Per thread the
-- actions form chains (no gap over 24 h); each chain is merged into the stored window:
-- after the window expired it opens a new one, before the window opened (with no overlap) it
-- changes nothing, otherwise it extends the window on either side. Chains are merged newest
-- first, so actions arriving in any order end in the same window.
create or replace function touch_messaging_windows(p_thread_ids uuid[], p_ats timestamptz[],
                                                   p_reasons text[])
returns void
language plpgsql
as $$
declare
    v_chains integer;
begin
    select max(n) into v_chains from (
        select sum(case when g.gap then 1 else 0 end) as n
        from (
            select x.thread_id,
                   lag(x.at) over (partition by x.thread_id order by x.at) is null
                   or x.at - lag(x.at) over (partition by x.thread_id order by x.at)
                      > interval '24 hours' as gap
            from unnest(p_thread_ids, p_ats) as x(thread_id, at)
            where x.thread_id is not null and x.at is not null
        ) as g
        group by g.thread_id
    ) as c;
    for v_pass in 0 .. coalesce(v_chains, 0) - 1 loop
        with actions as (
            select x.thread_id, x.at, coalesce(x.reason, 'other') as reason, x.ord, t.platform
            from unnest(p_thread_ids, p_ats, p_reasons) with ordinality as x(thread_id, at, reason, ord)
            join conversation_thread t on t.thread_id = x.thread_id
            where x.at is not null
        ),
        starts as (
            select a.*,
                   case when lag(a.at) over w is null
                             or a.at - lag(a.at) over w > interval '24 hours' then 1 else 0 end
                       as starts_chain
            from actions as a
            window w as (partition by a.thread_id order by a.at, a.ord)
        ),
        numbered as (
            select s.*, sum(s.starts_chain) over (partition by s.thread_id order by s.at, s.ord
                                                  rows unbounded preceding) as chain
            from starts as s
        ),
        chains as (
            select n.thread_id, n.platform, n.chain, min(n.at) as start_at, max(n.at) as last_at,
                   (array_agg(n.reason order by n.at, n.ord))[1] as start_reason,
                   max(n.chain) over (partition by n.thread_id) as chain_count
            from numbered as n
            group by n.thread_id, n.platform, n.chain
        )
        insert into messaging_policy_window as w
            (thread_id, window_type, opened_at, last_user_activity_at, expires_at, opened_by)
        select c.thread_id, k.window_type, c.start_at, c.last_at, c.last_at + k.span,
               c.start_reason
        from chains as c
        join (values ('standard', interval '24 hours'), ('human_agent', interval '7 days'))
            as k (window_type, span)
            on k.window_type = 'standard' or c.platform in ('messenger', 'instagram')
        where c.chain = c.chain_count - v_pass
        on conflict (thread_id, window_type) do update set
            opened_at = case
                when excluded.opened_at > w.expires_at then excluded.opened_at
                when excluded.expires_at < w.opened_at then w.opened_at
                else least(w.opened_at, excluded.opened_at) end,
            opened_by = case
                when excluded.opened_at > w.expires_at then excluded.opened_by
                when excluded.expires_at < w.opened_at then w.opened_by
                when excluded.opened_at < w.opened_at then excluded.opened_by
                else w.opened_by end,
            last_user_activity_at = case
                when excluded.opened_at > w.expires_at then excluded.last_user_activity_at
                when excluded.expires_at < w.opened_at then w.last_user_activity_at
                else greatest(w.last_user_activity_at, excluded.last_user_activity_at) end,
            expires_at = case
                when excluded.opened_at > w.expires_at then excluded.expires_at
                when excluded.expires_at < w.opened_at then w.expires_at
                else greatest(w.expires_at, excluded.expires_at) end,
            updated_at = now();
    end loop;
end;
$$;

-- The one-action form, kept for callers of the earlier schema.
create or replace function touch_messaging_window(p_thread_id uuid, p_at timestamptz,
                                                  p_reason text default 'message')
returns void
language plpgsql
as $$
begin
    if not exists (select 1 from conversation_thread where thread_id = p_thread_id) then
        raise exception 'touch_messaging_window: unknown thread %', p_thread_id;
    end if;
    perform touch_messaging_windows(array[p_thread_id], array[p_at], array[p_reason]);
end;
$$;

-- The three conversation_message triggers become statement-level: one statement inserting
-- a whole batch runs each of them once over the inserted rows (transition table
-- `new_messages`), whoever wrote the rows. What they do is unchanged.
drop trigger if exists conversation_message_log_event on conversation_message;
drop trigger if exists conversation_message_thread_timestamp on conversation_message;
drop trigger if exists conversation_message_open_window on conversation_message;

-- Every message becomes one user_event row: <platform>_received for inbound,
-- <platform>_sent for outbound (a send Meta refused is not an event).
create or replace function log_message_as_event()
returns trigger
language plpgsql
as $$
begin
    insert into user_event (user_id, etype, source, props, occurred_at)
    select
        t.user_id,
        case n.platform
            when 'messenger' then 'messenger'
            when 'instagram' then 'instagram_dm'
            when 'whatsapp' then 'whatsapp'
        end || case n.direction when 'inbound' then '_received' else '_sent' end,
        n.platform,
        jsonb_strip_nulls(jsonb_build_object(
            'thread_id', n.thread_id,
            'message_id', n.platform_message_id,
            'conversation_message_id', n.message_id,
            'message_type', n.message_type,
            'contact_id', t.contact_id,
            'business_account_id', t.business_account_id,
            'is_echo', case when n.is_echo then true end,
            'window', n.window_used,
            'referral', case when n.direction = 'inbound' then n.payload -> 'referral' end
        )),
        n.sent_at
    from new_messages as n
    join conversation_thread as t on t.thread_id = n.thread_id
    where not (n.direction = 'outbound' and n.status = 'failed');
    return null;
end;
$$;

-- Keep the thread's first/last message timestamps current (monotonic, order-independent).
create or replace function update_thread_timestamp()
returns trigger
language plpgsql
as $$
begin
    update conversation_thread as t set
        first_message_at = least(coalesce(t.first_message_at, a.first_at), a.first_at),
        last_message_at = greatest(coalesce(t.last_message_at, a.last_at), a.last_at),
        last_inbound_at = case when a.last_in is null then t.last_inbound_at
            else greatest(coalesce(t.last_inbound_at, a.last_in), a.last_in) end,
        last_outbound_at = case when a.last_out is null then t.last_outbound_at
            else greatest(coalesce(t.last_outbound_at, a.last_out), a.last_out) end,
        updated_at = now()
    from (
        select n.thread_id, min(n.sent_at) as first_at, max(n.sent_at) as last_at,
               max(n.sent_at) filter (where n.direction = 'inbound') as last_in,
               max(n.sent_at) filter (where n.direction = 'outbound') as last_out
        from new_messages as n
        group by n.thread_id
    ) as a
    where t.thread_id = a.thread_id;
    return null;
end;
$$;

-- A user's inbound message opens/extends the thread's windows. Echoes (the business's own
-- sends) and WhatsApp system notices (number or identity changes) are not user activity.
create or replace function open_window_on_inbound_message()
returns trigger
language plpgsql
as $$
begin
    perform touch_messaging_windows(
        array_agg(n.thread_id),
        array_agg(n.sent_at),
        array_agg(case when n.message_type = 'reaction' then 'reaction'
                       when n.message_type = 'postback' then 'postback'
                       else 'message' end))
    from new_messages as n
    where n.direction = 'inbound' and not n.is_echo and n.message_type <> 'system'
    having count(*) > 0;
    return null;
end;
$$;

create trigger conversation_message_log_event
    after insert on conversation_message
    referencing new table as new_messages
    for each statement execute function log_message_as_event();

create trigger conversation_message_thread_timestamp
    after insert on conversation_message
    referencing new table as new_messages
    for each statement execute function update_thread_timestamp();

create trigger conversation_message_open_window
    after insert on conversation_message
    referencing new table as new_messages
    for each statement execute function open_window_on_inbound_message();
