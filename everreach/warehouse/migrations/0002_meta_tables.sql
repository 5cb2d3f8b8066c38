-- The eleven Meta tables (plus the raw ad-object tables the ads sync writes).
-- Natural keys Meta gives are unique; enumerations are checked; secrets never live here.

-- Which pages, Instagram accounts, WhatsApp numbers, ad accounts and pixels to sync.
-- Tokens are NOT stored: `token_env_var` names the environment variable that holds one.
create table meta_platform_config (
    id bigserial primary key,
    platform text not null
        check (platform in ('ad_account', 'facebook_page', 'instagram_account',
                            'whatsapp_phone_number', 'pixel')),
    external_id text not null,
    name text,
    parent_external_id text,          -- IG account's page, WhatsApp number's WABA
    time_zone text,
    currency text,
    token_env_var text
        check (token_env_var is null or token_env_var ~ '^[A-Z_][A-Z0-9_]*$'),
    settings jsonb not null default '{}'::jsonb
        check (not (settings ?| array['access_token', 'token', 'app_secret', 'secret',
                                      'password'])),
    enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (platform, external_id)
);

-- Raw ad objects, as Meta describes them (names, statuses, budgets).
create table meta_ad_campaign (
    campaign_id text primary key,
    ad_account_id text not null,
    name text,
    status text,
    effective_status text,
    objective text,
    daily_budget numeric(18, 2),
    lifetime_budget numeric(18, 2),
    created_time timestamptz,
    updated_time timestamptz,
    raw jsonb not null default '{}'::jsonb,
    synced_at timestamptz not null default now()
);
create index meta_ad_campaign_account_idx on meta_ad_campaign (ad_account_id);

create table meta_ad_set (
    adset_id text primary key,
    ad_account_id text not null,
    campaign_id text not null,
    name text,
    status text,
    effective_status text,
    daily_budget numeric(18, 2),
    lifetime_budget numeric(18, 2),
    created_time timestamptz,
    updated_time timestamptz,
    raw jsonb not null default '{}'::jsonb,
    synced_at timestamptz not null default now()
);
create index meta_ad_set_campaign_idx on meta_ad_set (campaign_id);

create table meta_ad (
    ad_id text primary key,
    ad_account_id text not null,
    campaign_id text not null,
    adset_id text not null,
    name text,
    status text,
    effective_status text,
    created_time timestamptz,
    updated_time timestamptz,
    raw jsonb not null default '{}'::jsonb,
    synced_at timestamptz not null default now()
);
create index meta_ad_adset_idx on meta_ad (adset_id);

-- Daily ads insights, one row per date x level x entity.
-- `campaign_id` (the EverReach campaign) is set on campaign-level rows only, so the
-- dashboards' `SUM(spend) … JOIN campaign` counts every campaign-day once; every
-- campaign/adset/ad row carries `parent_campaign_id` for finer-grained joins.
create table ad_performance (
    id bigserial primary key,
    date date not null,                       -- the ad account's local date
    ad_account_id text not null,              -- act id without the act_ prefix
    level text not null check (level in ('account', 'campaign', 'adset', 'ad')),
    entity_id text not null,                  -- Meta id at that level
    entity_name text,
    campaign_id uuid references campaign (campaign_id),
    parent_campaign_id uuid references campaign (campaign_id),
    meta_campaign_id text,
    meta_adset_id text,
    meta_ad_id text,
    account_currency text,
    account_timezone text,
    spend numeric(18, 4) not null default 0 check (spend >= 0),
    impressions bigint not null default 0 check (impressions >= 0),
    reach bigint check (reach >= 0),
    frequency numeric(18, 6),
    clicks bigint check (clicks >= 0),
    link_clicks bigint check (link_clicks >= 0),
    ctr numeric(18, 6),
    cpc numeric(18, 6),
    cpm numeric(18, 6),
    actions jsonb not null default '[]'::jsonb,
    action_values jsonb not null default '[]'::jsonb,
    conversions numeric(18, 4) not null default 0,
    conversion_value numeric(18, 4) not null default 0,
    fetched_at timestamptz not null default now(),
    unique (ad_account_id, level, entity_id, date),
    check ((level = 'campaign') = (campaign_id is not null)),
    check (level = 'account' or parent_campaign_id is not null)
);
create index ad_performance_date_idx on ad_performance (date);
create index ad_performance_campaign_date_idx on ad_performance (campaign_id, date)
    where campaign_id is not null;
create index ad_performance_parent_campaign_idx on ad_performance (parent_campaign_id, date);

-- Organic content: Instagram media and Facebook Page posts.
create table social_media_post (
    platform text not null check (platform in ('instagram', 'facebook')),
    post_id text not null,
    account_id text not null,                 -- IG user id or Page id
    media_type text,                          -- IMAGE, VIDEO, CAROUSEL_ALBUM, STATUS, …
    media_product_type text,                  -- FEED, REELS, STORY, AD
    caption text,
    permalink text,
    thumbnail_url text,
    posted_at timestamptz not null,
    insights_skipped_reason text,             -- e.g. 2108006: before business conversion
    raw jsonb not null default '{}'::jsonb,
    first_seen_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (platform, post_id)
);
create index social_media_post_account_idx on social_media_post (platform, account_id, posted_at);

-- Lifetime post counters, one snapshot per post per day and metric.
create table social_post_insights (
    platform text not null,
    post_id text not null,
    snapshot_date date not null,
    metric text not null,
    value numeric(20, 4) check (value >= 0),
    value_breakdown jsonb,
    fetched_at timestamptz not null default now(),
    primary key (platform, post_id, snapshot_date, metric),
    foreign key (platform, post_id) references social_media_post (platform, post_id)
        on delete cascade
);
create index social_post_insights_date_idx on social_post_insights (snapshot_date);

-- Account-level daily metrics (IG account, Facebook Page).
create table social_account_insights (
    platform text not null check (platform in ('instagram', 'facebook')),
    account_id text not null,
    date date not null,
    metric text not null,
    period text not null default 'day' check (period in ('day', 'week', 'days_28', 'lifetime',
                                                         'total_value')),
    value numeric(20, 4),
    value_breakdown jsonb,
    fetched_at timestamptz not null default now(),
    primary key (platform, account_id, date, metric, period)
);
create index social_account_insights_date_idx on social_account_insights (date);

-- Every webhook POST Meta sent, exactly as received, before anything is applied.
create table meta_webhook_event (
    id bigserial primary key,
    received_at timestamptz not null default now(),
    object_type text,                         -- page, instagram, whatsapp_business_account
    raw_body bytea not null,
    body_sha256 text not null,
    signature text,
    headers jsonb not null default '{}'::jsonb,
    status text not null default 'pending'
        check (status in ('pending', 'applied', 'failed', 'ignored')),
    attempts integer not null default 0,
    error text,
    applied_at timestamptz,
    entry_count integer,
    event_count integer
);
create index meta_webhook_event_received_idx on meta_webhook_event (received_at);
create index meta_webhook_event_unapplied_idx on meta_webhook_event (received_at)
    where status in ('pending', 'failed');
create index meta_webhook_event_sha_idx on meta_webhook_event (body_sha256);

-- One conversation per platform x business account x contact.
create table conversation_thread (
    thread_id uuid primary key default gen_random_uuid(),
    platform text not null check (platform in ('messenger', 'instagram', 'whatsapp')),
    business_account_id text not null,        -- Page id, IG account id, phone_number_id
    contact_id text not null,                 -- PSID, IGSID, wa_id
    contact_name text,
    user_id uuid references auth.users (id) on delete set null,
    status text not null default 'open' check (status in ('open', 'closed', 'archived')),
    referral_source text,                     -- ADS, SHORTLINK, CUSTOMER_CHAT_PLUGIN, ad, post …
    referral_ad_id text,
    referral_ref text,                        -- m.me / ig.me `ref` (the EverReach user id)
    ctwa_clid text,
    referral jsonb,
    first_message_at timestamptz,
    last_message_at timestamptz,
    last_inbound_at timestamptz,
    last_outbound_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (platform, business_account_id, contact_id)
);
create index conversation_thread_user_idx on conversation_thread (user_id);
create index conversation_thread_last_message_idx on conversation_thread (last_message_at);

create table conversation_message (
    message_id uuid primary key default gen_random_uuid(),
    thread_id uuid not null references conversation_thread (thread_id) on delete cascade,
    platform text not null check (platform in ('messenger', 'instagram', 'whatsapp')),
    platform_message_id text,                 -- mid / wamid; null only for a send Meta refused
    direction text not null check (direction in ('inbound', 'outbound')),
    message_type text not null
        check (message_type in ('text', 'image', 'audio', 'video', 'file', 'document',
                                'sticker', 'location', 'contacts', 'interactive', 'button',
                                'reaction', 'order', 'system', 'template', 'postback',
                                'quick_reply', 'story_reply', 'story_mention', 'share',
                                'fallback', 'unsupported', 'request_welcome', 'other')),
    text text,
    payload jsonb not null default '{}'::jsonb,
    reply_to_platform_message_id text,
    is_echo boolean not null default false,
    is_deleted boolean not null default false,
    edited_at timestamptz,
    status text not null default 'received'
        check (status in ('received', 'pending', 'sent', 'delivered', 'read', 'played',
                          'failed', 'deleted')),
    -- status only moves forward: sent 1 < delivered 2 < read 3 (< played 4); failed 99 sticks
    status_rank smallint not null default 0,
    error_code integer,
    error_message text,
    messaging_type text,                      -- RESPONSE, UPDATE, MESSAGE_TAG
    message_tag text,                         -- HUMAN_AGENT
    window_used text check (window_used in ('standard', 'human_agent', 'template')),
    sent_at timestamptz not null,             -- Meta's timestamp of the message
    delivered_at timestamptz,
    read_at timestamptz,
    failed_at timestamptz,
    webhook_event_id bigint references meta_webhook_event (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (platform, platform_message_id)
);
create index conversation_message_thread_idx on conversation_message (thread_id, sent_at);
create index conversation_message_sent_at_idx on conversation_message (sent_at);

-- Delivery / read receipts and WhatsApp statuses, one row per distinct receipt.
create table message_delivery_event (
    id bigserial primary key,
    platform text not null check (platform in ('messenger', 'instagram', 'whatsapp')),
    event_type text not null
        check (event_type in ('sent', 'delivered', 'read', 'played', 'failed', 'deleted')),
    platform_message_id text,                 -- wamid / mid when Meta names one
    message_id uuid references conversation_message (message_id) on delete set null,
    thread_id uuid references conversation_thread (thread_id) on delete set null,
    business_account_id text,
    contact_id text,
    watermark timestamptz,                    -- Messenger/IG: everything before is delivered/read
    occurred_at timestamptz not null,
    error_code integer,
    error_title text,
    error_message text,
    conversation_id text,
    conversation_origin text,
    pricing jsonb,
    raw jsonb not null default '{}'::jsonb,
    webhook_event_id bigint references meta_webhook_event (id) on delete set null,
    dedup_key text not null unique,
    created_at timestamptz not null default now()
);
create index message_delivery_event_pmid_idx on message_delivery_event (platform, platform_message_id);
create index message_delivery_event_unmatched_idx on message_delivery_event (platform, platform_message_id)
    where message_id is null;

-- Policy windows per thread: 'standard' (24 h; WhatsApp's customer-service window) and
-- 'human_agent' (7 days, Messenger and Instagram), timed from Meta's event timestamps.
create table messaging_policy_window (
    thread_id uuid not null references conversation_thread (thread_id) on delete cascade,
    window_type text not null check (window_type in ('standard', 'human_agent')),
    opened_at timestamptz not null,
    last_user_activity_at timestamptz not null,
    expires_at timestamptz not null,
    opened_by text not null
        check (opened_by in ('message', 'postback', 'reaction', 'referral', 'optin', 'other')),
    updated_at timestamptz not null default now(),
    primary key (thread_id, window_type),
    check (expires_at > last_user_activity_at)
);
create index messaging_policy_window_expires_idx on messaging_policy_window (expires_at);

-- Conversions API events: PII is hashed before it is stored (user_data holds hashes and
-- the identifiers Meta wants in clear: client IP, user agent, fbp, fbc, lead id, ctwa_clid).
create table meta_conversion_event (
    id bigserial primary key,
    pixel_id text not null,
    event_name text not null,
    event_id text not null,
    event_time timestamptz not null,
    action_source text not null
        check (action_source in ('website', 'app', 'email', 'phone_call', 'chat',
                                 'physical_store', 'system_generated',
                                 'business_messaging', 'other')),
    event_source_url text,
    messaging_channel text,
    user_id uuid references auth.users (id) on delete set null,
    user_data jsonb not null default '{}'::jsonb,
    custom_data jsonb not null default '{}'::jsonb,
    value numeric(18, 4),
    currency text check (currency is null or currency ~ '^[A-Z]{3}$'),
    test_event_code text,
    is_test boolean not null default false,
    status text not null default 'pending'
        check (status in ('pending', 'sent', 'rejected', 'failed')),
    attempts integer not null default 0,
    fbtrace_id text,
    meta_response jsonb,
    error_message text,
    source text not null default 'function' check (source in ('api', 'function', 'user_event')),
    source_event_ref text,
    created_at timestamptz not null default now(),
    last_attempt_at timestamptz,
    sent_at timestamptz,
    unique (pixel_id, event_name, event_id)
);
create index meta_conversion_event_pending_idx on meta_conversion_event (pixel_id, id)
    where status = 'pending';
create unique index meta_conversion_event_source_ref_key on meta_conversion_event (source, source_event_ref)
    where source_event_ref is not null;
