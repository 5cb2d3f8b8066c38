-- Messaging functions and triggers: policy windows, message → user_event, thread timestamps.

-- Open or extend a thread's policy windows from a user action at Meta's timestamp `p_at`.
-- Order-independent: an older event never shortens a window a newer one opened.
create or replace function touch_messaging_window(p_thread_id uuid, p_at timestamptz,
                                                  p_reason text default 'message')
returns void
language plpgsql
as $$
declare
    v_platform text;
begin
    select platform into v_platform from conversation_thread where thread_id = p_thread_id;
    if v_platform is null then
        raise exception 'touch_messaging_window: unknown thread %', p_thread_id;
    end if;

    insert into messaging_policy_window as w
        (thread_id, window_type, opened_at, last_user_activity_at, expires_at, opened_by)
    values (p_thread_id, 'standard', p_at, p_at, p_at + interval '24 hours', p_reason)
    on conflict (thread_id, window_type) do update set
        -- a window that had closed before this activity opens anew at it
        opened_at = case
            when excluded.last_user_activity_at > w.expires_at then excluded.opened_at
            else least(w.opened_at, excluded.opened_at) end,
        opened_by = case
            when excluded.last_user_activity_at > w.expires_at then excluded.opened_by
            else w.opened_by end,
        last_user_activity_at = greatest(w.last_user_activity_at, excluded.last_user_activity_at),
        expires_at = greatest(w.expires_at, excluded.expires_at),
        updated_at = now();

    if v_platform in ('messenger', 'instagram') then
        insert into messaging_policy_window as w
            (thread_id, window_type, opened_at, last_user_activity_at, expires_at, opened_by)
        values (p_thread_id, 'human_agent', p_at, p_at, p_at + interval '7 days', p_reason)
        on conflict (thread_id, window_type) do update set
            opened_at = case
                when excluded.last_user_activity_at > w.expires_at then excluded.opened_at
                else least(w.opened_at, excluded.opened_at) end,
            opened_by = case
                when excluded.last_user_activity_at > w.expires_at then excluded.opened_by
                else w.opened_by end,
            last_user_activity_at = greatest(w.last_user_activity_at,
                                             excluded.last_user_activity_at),
            expires_at = greatest(w.expires_at, excluded.expires_at),
            updated_at = now();
    end if;
end;
$$;

-- Is the thread's window of the given type open at `p_at`?
-- `is_in_messaging_window(thread)` answers for the standard 24-hour window, now.
create or replace function is_in_messaging_window(p_thread_id uuid,
                                                  p_window_type text default 'standard',
                                                  p_at timestamptz default now())
returns boolean
language sql
stable
as $$
    select coalesce((
        select p_at >= w.opened_at and p_at < w.expires_at
        from messaging_policy_window w
        where w.thread_id = p_thread_id and w.window_type = p_window_type
    ), false)
$$;

-- Every message becomes one user_event row: <platform>_received for inbound,
-- <platform>_sent for outbound (a send Meta refused is not an event).
create or replace function log_message_as_event()
returns trigger
language plpgsql
as $$
declare
    v_thread conversation_thread%rowtype;
    v_prefix text;
begin
    if new.direction = 'outbound' and new.status = 'failed' then
        return new;
    end if;
    select * into v_thread from conversation_thread where thread_id = new.thread_id;
    v_prefix := case new.platform
        when 'messenger' then 'messenger'
        when 'instagram' then 'instagram_dm'
        when 'whatsapp' then 'whatsapp'
    end;
    insert into user_event (user_id, etype, source, props, occurred_at)
    values (
        v_thread.user_id,
        v_prefix || case new.direction when 'inbound' then '_received' else '_sent' end,
        new.platform,
        jsonb_strip_nulls(jsonb_build_object(
            'thread_id', new.thread_id,
            'message_id', new.platform_message_id,
            'conversation_message_id', new.message_id,
            'message_type', new.message_type,
            'contact_id', v_thread.contact_id,
            'business_account_id', v_thread.business_account_id,
            'is_echo', case when new.is_echo then true end,
            'window', new.window_used,
            'referral', case when new.direction = 'inbound' then new.payload -> 'referral' end
        )),
        new.sent_at
    );
    return new;
end;
$$;

-- Keep the thread's first/last message timestamps current (monotonic, order-independent).
create or replace function update_thread_timestamp()
returns trigger
language plpgsql
as $$
begin
    update conversation_thread t set
        first_message_at = least(coalesce(t.first_message_at, new.sent_at), new.sent_at),
        last_message_at = greatest(coalesce(t.last_message_at, new.sent_at), new.sent_at),
        last_inbound_at = case when new.direction = 'inbound'
            then greatest(coalesce(t.last_inbound_at, new.sent_at), new.sent_at)
            else t.last_inbound_at end,
        last_outbound_at = case when new.direction = 'outbound'
            then greatest(coalesce(t.last_outbound_at, new.sent_at), new.sent_at)
            else t.last_outbound_at end,
        updated_at = now()
    where t.thread_id = new.thread_id;
    return new;
end;
$$;

-- An inbound user message opens/extends the thread's windows. Echoes (the page's own
-- sends) are outbound and never count as user activity.
create or replace function open_window_on_inbound_message()
returns trigger
language plpgsql
as $$
begin
    if new.direction = 'inbound' and not new.is_echo then
        perform touch_messaging_window(new.thread_id, new.sent_at,
            case when new.message_type = 'reaction' then 'reaction'
                 when new.message_type = 'postback' then 'postback'
                 else 'message' end);
    end if;
    return new;
end;
$$;

create trigger conversation_message_log_event
    after insert on conversation_message
    for each row execute function log_message_as_event();

create trigger conversation_message_thread_timestamp
    after insert on conversation_message
    for each row execute function update_thread_timestamp();

create trigger conversation_message_open_window
    after insert on conversation_message
    for each row execute function open_window_on_inbound_message();
