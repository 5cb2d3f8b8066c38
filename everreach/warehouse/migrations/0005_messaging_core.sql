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
    external_id text,                         -- what it is about: mid/wamid, call, template
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
            from unnest(p_thread_ids, p_ats, p_reasons) with ordinality
                as x(thread_id, at, reason, ord)
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

-- The set-based apply of one batch of webhook events, in one call: the batch arrives as one
-- JSON document with a section per table (built by everreach.messaging.apply), and each
-- section is written with one statement. With `raw`, the batch's raw webhook rows are
-- inserted first and the other sections name them by position (`ev`); without it, `ev` is
-- the id of a stored row, and `outcomes` records how each stored body fared. Called alone
-- in autocommit mode it is one transaction and one round trip. Returns the ids of the
-- inserted raw rows, in batch order.
create or replace function messaging_event_id(p_ids bigint[], p_ev bigint)
returns bigint
language sql
immutable
as $$
    select case when p_ids is null then p_ev else p_ids[p_ev + 1] end
$$;

-- A receipt's rank: status only moves forward (sent 1 < delivered 2 < read 3 < played 4);
-- failed (99) sticks; an unsend (deleted) ranks nothing.
create or replace function messaging_status_rank(p_event_type text)
returns integer
language sql
immutable
as $$
    select case p_event_type when 'sent' then 1 when 'delivered' then 2 when 'read' then 3
                             when 'played' then 4 when 'failed' then 99 else 0 end
$$;

-- A batch is a few hundred rows against tables that grow without bound: every join probes
-- an index (nested loops), never a hash of a whole table — the planner cannot know how
-- many rows a JSON document holds and would otherwise scan conversation_message per batch.
-- For the same reason a plan made for one batch fits every batch: each statement is
-- planned once per session (generic plans) instead of once per call.
create or replace function messaging_apply(p_batch jsonb)
returns bigint[]
language plpgsql
set enable_hashjoin = off
set enable_mergejoin = off
set plan_cache_mode = force_generic_plan
as $$
declare
    v_ids bigint[];
begin
    -- The raw webhook rows (the body hex-encoded: bytes, not always UTF-8), in batch order,
    -- so their ids ascend in that order.
    if p_batch ? 'raw' then
        with inserted as (
            insert into meta_webhook_event (object_type, raw_body, body_sha256, signature,
                headers, received_at, status, error, attempts, applied_at, entry_count,
                event_count)
            select x.obj, decode(x.body, 'hex'), x.sha, x.sig, coalesce(x.headers, '{}'),
                   x.at, x.status, x.error, x.attempts,
                   case when x.status = 'applied' then now() end, x.entries, x.items
            from jsonb_to_recordset(p_batch -> 'raw')
                as x(obj text, body text, sha text, sig text, headers jsonb, at timestamptz,
                     status text, error text, attempts integer, entries integer,
                     items integer, o integer)
            order by x.o
            returning id
        )
        select array_agg(id order by id) into v_ids from inserted;
    end if;

    -- The batch's advisory locks, in one statement and a fixed (hash) order: two batches
    -- touching the same conversation or message id queue instead of deadlocking.
    if p_batch ? 'locks' then
        perform count(pg_advisory_xact_lock(s.h))
        from (select distinct hashtextextended(k, 0) as h
              from jsonb_array_elements_text(p_batch -> 'locks') as k
              order by 1) as s;
    end if;

    -- Conversations first seen in this batch.
    if p_batch ? 'threads' then
        insert into conversation_thread (platform, business_account_id, contact_id,
            contact_name, contact_name_at)
        select k.p, k.b, k.c, k.name, k.at
        from jsonb_to_recordset(p_batch -> 'threads')
            as k(p text, b text, c text, name text, at timestamptz)
        on conflict (platform, business_account_id, contact_id) do nothing;
    end if;

    -- The profile name Meta sent with the newest event wins (ties: the greater name).
    if p_batch ? 'renames' then
        update conversation_thread as t set
            contact_name = k.name, contact_name_at = k.at, updated_at = now()
        from jsonb_to_recordset(p_batch -> 'renames')
            as k(p text, b text, c text, name text, at timestamptz)
        where t.platform = k.p and t.business_account_id = k.b and t.contact_id = k.c
          and (t.contact_name_at is null or t.contact_name_at < k.at
               or (t.contact_name_at = k.at and t.contact_name < k.name));
    end if;

    -- Messenger plugin identities; `contact_id` once Meta ties one to a PSID.
    if p_batch ? 'user_refs' then
        insert into messaging_user_ref as u (platform, business_account_id, user_ref,
            contact_id, first_seen_at, last_seen_at, tied_at)
        select x.p, x.b, x.ref, x.c, x.first_at, x.last_at, x.tied_at
        from jsonb_to_recordset(p_batch -> 'user_refs')
            as x(p text, b text, ref text, c text, first_at timestamptz,
                 last_at timestamptz, tied_at timestamptz)
        on conflict (platform, business_account_id, user_ref) do update set
            first_seen_at = least(u.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(u.last_seen_at, excluded.last_seen_at),
            contact_id = coalesce(u.contact_id, excluded.contact_id),
            tied_at = coalesce(u.tied_at, excluded.tied_at),
            updated_at = now();
    end if;

    -- The thread keeps its earliest referral (ties: the first one applied).
    if p_batch ? 'referrals' then
        update conversation_thread as t set
            referral_source = r.source, referral_ad_id = r.ad_id, referral_ref = r.ref,
            ctwa_clid = r.clid, referral = r.raw, updated_at = now()
        from jsonb_to_recordset(p_batch -> 'referrals')
            as r(p text, b text, c text, source text, ad_id text, ref text, clid text,
                 raw jsonb, at timestamptz)
        where t.platform = r.p and t.business_account_id = r.b and t.contact_id = r.c
          and (t.referral is null or (t.referral ->> 'occurred_at')::timestamptz > r.at);
    end if;

    -- The EverReach app puts its user id in the m.me / ig.me `ref`: link the thread (when
    -- the user exists) so the triggers attribute the conversation's messages to that user.
    if p_batch ? 'user_links' then
        update conversation_thread as t set user_id = c.user_id, updated_at = now()
        from (
            select distinct on (x.p, x.b, x.c) x.p, x.b, x.c, x.user_id
            from jsonb_to_recordset(p_batch -> 'user_links')
                as x(p text, b text, c text, user_id uuid, o integer)
            join auth.users as u on u.id = x.user_id
            order by x.p, x.b, x.c, x.o
        ) as c
        where t.platform = c.p and t.business_account_id = c.b and t.contact_id = c.c
          and t.user_id is null;
    end if;

    -- One ad_referral user_event per referral. user_event has no unique key of ours: the
    -- thread's (or identity's) advisory lock and "not exists" keep replays from logging it
    -- twice.
    if p_batch ? 'ad_referrals' then
        insert into user_event (user_id, etype, source, props, occurred_at)
        select t.user_id, 'ad_referral', x.p,
               x.props || case when t.thread_id is null then '{}'::jsonb
                               else jsonb_build_object('thread_id', t.thread_id) end,
               x.at
        from jsonb_to_recordset(p_batch -> 'ad_referrals')
            as x(p text, b text, c text, key text, props jsonb, at timestamptz, o integer)
        left join conversation_thread as t on t.platform = x.p
            and t.business_account_id = x.b and t.contact_id = x.c
        where not exists (
            select 1 from user_event as e
            where e.etype = 'ad_referral' and e.occurred_at = x.at
              and e.props ->> 'referral_key' = x.key)
        order by x.o;
    end if;

    -- Messages, unique per (platform, mid/wamid): a duplicate inserts nothing, and the
    -- statement-level triggers see inserted rows only.
    if p_batch ? 'messages' then
        insert into conversation_message (message_id, thread_id, platform,
            platform_message_id, direction, message_type, text, payload,
            reply_to_platform_message_id, is_echo, status, status_rank, error_code,
            error_message, messaging_type, message_tag, window_used, sent_at, failed_at,
            webhook_event_id, sent_via, sent_by, sent_by_role)
        select coalesce(m.id, gen_random_uuid()), t.thread_id, m.p, m.pmid, m.dir, m.type,
               m.text, coalesce(m.payload, '{}'::jsonb), m.reply_to, m.echo, m.status,
               m.rank, m.code, m.msg, m.mtype, m.tag, m.win, m.at,
               case when m.status = 'failed' then m.at end,
               messaging_event_id(v_ids, m.ev), m.via, m.by, m.role
        from jsonb_to_recordset(p_batch -> 'messages')
            as m(id uuid, p text, b text, c text, pmid text, dir text, type text,
                 text text, payload jsonb, reply_to text, echo boolean, status text,
                 rank smallint, code integer, msg text, mtype text, tag text, win text,
                 at timestamptz, ev bigint, via text, by text, role text, o integer)
        join conversation_thread as t on t.platform = m.p
            and t.business_account_id = m.b and t.contact_id = m.c
        order by m.o
        on conflict (platform, platform_message_id) do nothing;
    end if;

    -- A user action that is not a message (a referral, a PSID's opt-in) opens the windows.
    if p_batch ? 'touches' then
        perform touch_messaging_windows(array_agg(t.thread_id), array_agg(x.at),
                                        array_agg(x.reason))
        from jsonb_to_recordset(p_batch -> 'touches')
            as x(p text, b text, c text, at timestamptz, reason text)
        join conversation_thread as t on t.platform = x.p
            and t.business_account_id = x.b and t.contact_id = x.c
        having count(*) > 0;
    end if;

    -- Receipts, statuses, unsends: one row per dedup_key, unmatched until the message
    -- arrives.
    if p_batch ? 'receipts' then
        insert into message_delivery_event (platform, event_type, platform_message_id,
            message_id, thread_id, business_account_id, contact_id, watermark, occurred_at,
            error_code, error_title, error_message, conversation_id, conversation_origin,
            pricing, raw, webhook_event_id, dedup_key)
        select r.p, r.type, r.pmid, m.message_id, m.thread_id, r.b, r.c, r.wm, r.at,
               r.code, r.title, r.msg, r.conv, r.origin, r.pricing,
               coalesce(r.raw, '{}'::jsonb), messaging_event_id(v_ids, r.ev), r.dedup
        from jsonb_to_recordset(p_batch -> 'receipts')
            as r(p text, type text, pmid text, b text, c text, wm timestamptz,
                 at timestamptz, code integer, title text, msg text, conv text,
                 origin text, pricing jsonb, raw jsonb, ev bigint, dedup text, o integer)
        left join conversation_message as m
            on m.platform = r.p and m.platform_message_id = r.pmid
        order by r.o
        on conflict (dedup_key) do nothing;
    end if;

    -- Instagram's read names the last message read: everything the business sent before
    -- it is read too (a watermark receipt of that conversation).
    if p_batch ? 'derived' then
        insert into message_delivery_event (platform, event_type, business_account_id,
            contact_id, watermark, occurred_at, raw, webhook_event_id, dedup_key)
        select r.p, r.type, t.business_account_id, t.contact_id, m.sent_at, r.at,
               coalesce(r.raw, '{}'::jsonb), messaging_event_id(v_ids, r.ev),
               r.p || ':' || r.type || ':wm:' || t.business_account_id || ':'
                   || t.contact_id || ':' || floor(extract(epoch from m.sent_at) * 1000)::bigint
        from jsonb_to_recordset(p_batch -> 'derived')
            as r(p text, type text, pmid text, at timestamptz, raw jsonb, ev bigint,
                 o integer)
        join conversation_message as m
            on m.platform = r.p and m.platform_message_id = r.pmid
        join conversation_thread as t on t.thread_id = m.thread_id
        order by r.o
        on conflict (dedup_key) do nothing;
    end if;

    -- Receipts stored before their message arrived are attached to it now.
    if p_batch ? 'new_pmids' then
        update message_delivery_event as d set
            message_id = u.message_id, thread_id = u.thread_id
        from (
            select r.id, m.message_id, m.thread_id
            from jsonb_to_recordset(p_batch -> 'new_pmids') as x(p text, pmid text)
            join conversation_message as m
                on m.platform = x.p and m.platform_message_id = x.pmid
                and m.created_at = now()  -- inserted by this transaction, not a re-delivery
            cross join lateral (
                select r.id from message_delivery_event as r
                where r.message_id is null and r.platform = x.p
                  and r.platform_message_id = x.pmid
                offset 0  -- a probe per message, never a scan of every unmatched receipt
            ) as r
        ) as u
        where d.id = u.id;
    end if;

    -- Every touched message's status from its receipts: the ones naming it, this batch's
    -- watermarks covering it and, for an outbound message this transaction inserted
    -- (created_at = now()), every stored watermark covering it. Rank only moves forward,
    -- failed sticks, the earliest time of each stage wins: the same end state whatever
    -- order receipts and messages arrive in.
    if p_batch ?| array['named', 'new_pmids', 'watermarks', 'derived'] then
        with named as (
            -- messages named by this batch's receipts, and messages it inserted (created_at
            -- = now()): a re-delivered message has nothing new to reconcile
            select distinct m.message_id, m.platform, m.platform_message_id
            from (
                select x.p, x.pmid, false as new
                from jsonb_to_recordset(coalesce(p_batch -> 'named', '[]'))
                    as x(p text, pmid text)
                union all
                select x.p, x.pmid, true
                from jsonb_to_recordset(coalesce(p_batch -> 'new_pmids', '[]'))
                    as x(p text, pmid text)
            ) as x
            join conversation_message as m
                on m.platform = x.p and m.platform_message_id = x.pmid
                and (not x.new or m.created_at = now())
        ),
        by_id as (
            select x.message_id, d.event_type, d.occurred_at, d.error_code,
                   coalesce(d.error_message, d.error_title) as error_message
            from named as x
            join message_delivery_event as d
                on d.platform = x.platform and d.platform_message_id = x.platform_message_id
        ),
        batch_watermarks as (
            select w.p, w.b, w.c, w.type, w.wm, w.at
            from jsonb_to_recordset(coalesce(p_batch -> 'watermarks', '[]'))
                as w(p text, b text, c text, type text, wm timestamptz, at timestamptz)
            union all
            select r.p, t.business_account_id, t.contact_id, r.type, m.sent_at, r.at
            from jsonb_to_recordset(coalesce(p_batch -> 'derived', '[]'))
                as r(p text, type text, pmid text, at timestamptz)
            join conversation_message as m
                on m.platform = r.p and m.platform_message_id = r.pmid
            join conversation_thread as t on t.thread_id = m.thread_id
        ),
        by_batch_watermark as (
            select m.message_id, w.type as event_type, w.at as occurred_at,
                   null::integer as error_code, null::text as error_message
            from batch_watermarks as w
            join conversation_thread as t on t.platform = w.p
                and t.business_account_id = w.b and t.contact_id = w.c
            join conversation_message as m on m.thread_id = t.thread_id
                and m.direction = 'outbound' and m.sent_at <= w.wm
            where messaging_status_rank(w.type) > m.status_rank
               or (w.type in ('delivered', 'read', 'played')
                   and w.at < coalesce(m.delivered_at, 'infinity'))
               or (w.type in ('read', 'played') and w.at < coalesce(m.read_at, 'infinity'))
        ),
        by_stored_watermark as (
            select m.message_id, d.event_type, d.occurred_at, null::integer as error_code,
                   null::text as error_message
            from jsonb_to_recordset(coalesce(p_batch -> 'new_outbound', '[]'))
                as x(p text, pmid text)
            cross join lateral (
                select m.message_id, m.thread_id, m.sent_at from conversation_message as m
                where m.platform = x.p and m.platform_message_id = x.pmid
                  and m.direction = 'outbound' and m.created_at = now()
                offset 0  -- a probe per new message, never a scan for created_at
            ) as m
            join conversation_thread as t on t.thread_id = m.thread_id
            join message_delivery_event as d on d.platform = t.platform
                and d.business_account_id = t.business_account_id
                and d.contact_id = t.contact_id and d.watermark >= m.sent_at
        ),
        agg as (
            select r.message_id,
                   max(messaging_status_rank(r.event_type)) as rank,
                   min(r.occurred_at)
                       filter (where r.event_type in ('delivered', 'read', 'played'))
                       as delivered_at,
                   min(r.occurred_at) filter (where r.event_type in ('read', 'played'))
                       as read_at,
                   min(r.occurred_at) filter (where r.event_type = 'failed') as failed_at,
                   (array_agg(r.error_code order by r.occurred_at)
                       filter (where r.event_type = 'failed' and r.error_code is not null))[1]
                       as error_code,
                   (array_agg(r.error_message order by r.occurred_at)
                       filter (where r.event_type = 'failed'
                               and r.error_message is not null))[1] as error_message,
                   bool_or(r.event_type = 'deleted') as deleted
            from (
                select * from by_id
                union all select * from by_batch_watermark
                union all select * from by_stored_watermark
            ) as r
            group by r.message_id
        )
        update conversation_message as m set
            status = case when a.rank > m.status_rank then
                case a.rank when 1 then 'sent' when 2 then 'delivered' when 3 then 'read'
                            when 4 then 'played' else 'failed' end
                else m.status end,
            status_rank = greatest(m.status_rank, a.rank),
            delivered_at = least(m.delivered_at, a.delivered_at),
            read_at = least(m.read_at, a.read_at),
            failed_at = least(m.failed_at, a.failed_at),
            error_code = case when a.failed_at is not null
                then coalesce(m.error_code, a.error_code) else m.error_code end,
            error_message = case when a.failed_at is not null
                then coalesce(m.error_message, a.error_message) else m.error_message end,
            is_deleted = m.is_deleted or a.deleted,
            updated_at = now()
        from agg as a
        where m.message_id = a.message_id
          and (a.rank > m.status_rank
               or a.delivered_at < coalesce(m.delivered_at, 'infinity')
               or a.read_at < coalesce(m.read_at, 'infinity')
               or a.failed_at < coalesce(m.failed_at, 'infinity')
               or (a.failed_at is not null and m.error_code is null
                   and a.error_code is not null)
               or (a.deleted and not m.is_deleted));
    end if;

    -- The newest edit of each message, from this batch or stored before it arrived.
    if p_batch ?| array['edits', 'new_pmids'] then
        with edits as (
            select distinct on (e.p, e.pmid) e.p, e.pmid, e.text, e.at
            from (
                select x.p, x.pmid, x.text, x.at, x.o
                from jsonb_to_recordset(coalesce(p_batch -> 'edits', '[]'))
                    as x(p text, pmid text, text text, at timestamptz, o integer)
                union all
                select o.platform, o.external_id, o.payload ->> 'text', o.occurred_at, -1
                from jsonb_to_recordset(coalesce(p_batch -> 'new_pmids', '[]'))
                    as n(p text, pmid text)
                join conversation_message as m on m.platform = n.p
                    and m.platform_message_id = n.pmid and m.created_at = now()
                join messaging_observed_event as o on o.platform = n.p
                    and o.external_id = n.pmid and o.kind = 'message_edit'
            ) as e
            where e.text is not null
            order by e.p, e.pmid, e.at desc, e.o desc
        )
        update conversation_message as m set
            text = e.text, edited_at = e.at, updated_at = now()
        from edits as e
        where m.platform = e.p and m.platform_message_id = e.pmid
          and (m.edited_at is null or m.edited_at <= e.at)
          and (m.edited_at is distinct from e.at or m.text is distinct from e.text);
    end if;

    -- A Messenger edit always follows its message: one whose message is not stored yet
    -- fails its body (kept with the reason; `webhooks replay --failed-only` applies it
    -- later).
    if p_batch ? 'required_edits' then
        perform messaging_fail('message_edit for a message not received yet (' || x.pmid || ')')
        from jsonb_to_recordset(p_batch -> 'required_edits') as x(p text, pmid text)
        where not exists (
            select 1 from conversation_message as m
            where m.platform = x.p and m.platform_message_id = x.pmid);
    end if;

    -- Everything else Meta sends, typed by kind.
    if p_batch ? 'observed' then
        insert into messaging_observed_event (platform, kind, business_account_id,
            contact_id, user_ref, external_id, thread_id, occurred_at, payload,
            webhook_event_id, dedup_key)
        select x.p, x.kind, x.b, x.c, x.ref, x.ext, t.thread_id, x.at,
               coalesce(x.payload, '{}'::jsonb), messaging_event_id(v_ids, x.ev), x.dedup
        from jsonb_to_recordset(p_batch -> 'observed')
            as x(p text, kind text, b text, c text, ref text, ext text, at timestamptz,
                 payload jsonb, ev bigint, dedup text, o integer)
        left join conversation_thread as t on t.platform = x.p
            and t.business_account_id = x.b and t.contact_id = x.c
        order by x.o
        on conflict (dedup_key) do nothing;
    end if;

    -- The outcome of bodies whose raw rows were stored earlier (deferred apply, replay).
    if p_batch ? 'outcomes' then
        update meta_webhook_event as e set
            status = v.status, error = v.error, attempts = e.attempts + 1,
            applied_at = case when v.status = 'applied' then now() else e.applied_at end,
            entry_count = coalesce(v.entries, e.entry_count),
            event_count = coalesce(v.items, e.event_count)
        from jsonb_to_recordset(p_batch -> 'outcomes')
            as v(id bigint, status text, error text, entries integer, items integer)
        where e.id = v.id;
    end if;
    return v_ids;
end;
$$;
