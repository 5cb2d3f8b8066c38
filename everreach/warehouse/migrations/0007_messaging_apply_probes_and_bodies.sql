-- messaging_apply (migration 0005), cheaper per batch in two ways.
-- 1. Two joins no longer depend on the planner's idea of a table's size. The function's
--    statements are planned once per session (generic plans): on a connection opened while
--    conversation_message was small (a new database, a receiver started right after a
--    restore) the planner chose to scan conversation_message for `created_at = now()` and for
--    a thread's outbound messages, once per batch, and kept that plan for the session's
--    lifetime while the table grew. Both now probe an index per row of the batch
--    (`cross join lateral (… offset 0)`): attaching receipts to the messages this transaction
--    inserted (unique index on platform and mid), and the outbound messages a batch's
--    watermark covers (index on thread and sent_at).
-- 2. The raw webhook bodies come as a second argument, a bytea[] sent in binary, instead of
--    hex text inside the JSON document: the document is about a third smaller, so the server
--    parses a third less JSON per batch and decodes no hex. `raw` rows name their body by
--    position (`o`).
-- Everything else is unchanged.
drop function if exists messaging_apply(jsonb);

create or replace function messaging_apply(p_batch jsonb, p_bodies bytea[] default null)
returns bigint[]
language plpgsql
set enable_hashjoin = off
set enable_mergejoin = off
set plan_cache_mode = force_generic_plan
as $$
declare
    v_ids bigint[];
begin
    -- The raw webhook rows, in batch order, so their ids ascend in that order; the bodies
    -- (bytes, not always UTF-8) are `p_bodies` by position.
    if p_batch ? 'raw' then
        with inserted as (
            insert into meta_webhook_event (object_type, raw_body, body_sha256, signature,
                headers, received_at, status, error, attempts, applied_at, entry_count,
                event_count)
            select x.obj, p_bodies[x.o + 1], x.sha, x.sig,
                   coalesce(x.headers, '{}'), x.at, x.status, x.error, x.attempts,
                   case when x.status = 'applied' then now() end, x.entries, x.items
            from jsonb_to_recordset(p_batch -> 'raw')
                as x(obj text, sha text, sig text, headers jsonb, at timestamptz,
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
            cross join lateral (
                select m.message_id, m.thread_id from conversation_message as m
                where m.platform = x.p and m.platform_message_id = x.pmid
                  and m.created_at = now()  -- inserted by this transaction, not a re-delivery
                offset 0  -- a probe per message, never a scan for created_at
            ) as m
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
            cross join lateral (
                select m.message_id, m.status_rank, m.delivered_at, m.read_at
                from conversation_message as m
                where m.thread_id = t.thread_id and m.sent_at <= w.wm
                  and m.direction = 'outbound'
                offset 0  -- the thread's messages by index, never a scan of every outbound
            ) as m
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
