-- Ads insights broken down by audience, geography and placement, conversions by action
-- destination, and ad creatives.
--
-- One table per breakdown family, each with its breakdown values as typed columns in its
-- primary key: Postgres enforces every family's own grain, BI tools read the tables without
-- unpacking anything, and Meta's own rules differ per family (region rows carry no web
-- conversions, reach is per breakdown value). All are ad-level, daily, in the ad account's
-- local dates, and replaced window by window like `ad_performance`. Reach is Meta's figure
-- for the ad and breakdown value: it does not add up across breakdown values.

create table ad_insights_age_gender (
    date date not null,
    ad_account_id text not null,
    ad_id text not null,
    adset_id text not null,
    campaign_id text not null,
    age text not null,
    gender text not null,
    account_currency text,
    spend numeric(18, 4) not null default 0 check (spend >= 0),
    impressions bigint not null default 0 check (impressions >= 0),
    reach bigint check (reach >= 0),
    clicks bigint not null default 0 check (clicks >= 0),
    link_clicks bigint not null default 0 check (link_clicks >= 0),
    actions jsonb not null default '[]'::jsonb,
    action_values jsonb not null default '[]'::jsonb,
    conversions numeric(18, 4) not null default 0,
    conversion_value numeric(18, 4) not null default 0,
    fetched_at timestamptz not null default now(),
    primary key (ad_account_id, date, ad_id, age, gender)
);
create index ad_insights_age_gender_fetched_idx on ad_insights_age_gender (fetched_at);

create table ad_insights_country (
    date date not null,
    ad_account_id text not null,
    ad_id text not null,
    adset_id text not null,
    campaign_id text not null,
    country text not null,                    -- ISO 3166-1 alpha-2, as Meta reports it
    account_currency text,
    spend numeric(18, 4) not null default 0 check (spend >= 0),
    impressions bigint not null default 0 check (impressions >= 0),
    reach bigint check (reach >= 0),
    clicks bigint not null default 0 check (clicks >= 0),
    link_clicks bigint not null default 0 check (link_clicks >= 0),
    actions jsonb not null default '[]'::jsonb,
    action_values jsonb not null default '[]'::jsonb,
    conversions numeric(18, 4) not null default 0,
    conversion_value numeric(18, 4) not null default 0,
    fetched_at timestamptz not null default now(),
    primary key (ad_account_id, date, ad_id, country)
);
create index ad_insights_country_fetched_idx on ad_insights_country (fetched_at);

-- Meta names regions without their country, and leaves web (pixel) conversions out of
-- region rows: conversions here are on-Meta actions only.
create table ad_insights_region (
    date date not null,
    ad_account_id text not null,
    ad_id text not null,
    adset_id text not null,
    campaign_id text not null,
    region text not null,
    account_currency text,
    spend numeric(18, 4) not null default 0 check (spend >= 0),
    impressions bigint not null default 0 check (impressions >= 0),
    reach bigint check (reach >= 0),
    clicks bigint not null default 0 check (clicks >= 0),
    link_clicks bigint not null default 0 check (link_clicks >= 0),
    actions jsonb not null default '[]'::jsonb,
    action_values jsonb not null default '[]'::jsonb,
    conversions numeric(18, 4) not null default 0,
    conversion_value numeric(18, 4) not null default 0,
    fetched_at timestamptz not null default now(),
    primary key (ad_account_id, date, ad_id, region)
);
create index ad_insights_region_fetched_idx on ad_insights_region (fetched_at);

create table ad_insights_placement (
    date date not null,
    ad_account_id text not null,
    ad_id text not null,
    adset_id text not null,
    campaign_id text not null,
    publisher_platform text not null,         -- facebook, instagram, audience_network, …
    platform_position text not null,          -- feed, instagram_stories, an_classic, …
    impression_device text not null,          -- iphone, android_smartphone, desktop, …
    account_currency text,
    spend numeric(18, 4) not null default 0 check (spend >= 0),
    impressions bigint not null default 0 check (impressions >= 0),
    reach bigint check (reach >= 0),
    clicks bigint not null default 0 check (clicks >= 0),
    link_clicks bigint not null default 0 check (link_clicks >= 0),
    actions jsonb not null default '[]'::jsonb,
    action_values jsonb not null default '[]'::jsonb,
    conversions numeric(18, 4) not null default 0,
    conversion_value numeric(18, 4) not null default 0,
    fetched_at timestamptz not null default now(),
    primary key (ad_account_id, date, ad_id, publisher_platform, platform_position,
                 impression_device)
);
create index ad_insights_placement_fetched_idx on ad_insights_placement (fetched_at);

-- Actions per ad and day by action type and destination (action_breakdowns action_type,
-- action_target_id, action_destination): one row per entry of Meta's `actions` array, with
-- the matching `action_values` entry. Meta labels the actions it measures itself (link
-- clicks → the pixel's site, leads → the Page); web conversions come without a target, kept
-- here as '' so the key stays a key.
create table ad_insights_actions (
    date date not null,
    ad_account_id text not null,
    ad_id text not null,
    adset_id text not null,
    campaign_id text not null,
    action_type text not null,
    action_target_id text not null default '',
    action_destination text not null default '',
    account_currency text,
    value numeric(18, 4) not null default 0,          -- Meta's `value` (the account's setting)
    value_1d_click numeric(18, 4),
    value_7d_click numeric(18, 4),
    value_28d_click numeric(18, 4),
    value_1d_view numeric(18, 4),
    money numeric(18, 4),                             -- the `action_values` entry's `value`
    money_1d_click numeric(18, 4),
    money_7d_click numeric(18, 4),
    money_28d_click numeric(18, 4),
    money_1d_view numeric(18, 4),
    is_conversion boolean not null default false,     -- one of the configured action types
    conversions numeric(18, 4) not null default 0,    -- under the configured windows (0 if not
    conversion_value numeric(18, 4) not null default 0,  -- a conversion), as in ad_performance
    fetched_at timestamptz not null default now(),
    primary key (ad_account_id, date, ad_id, action_type, action_target_id, action_destination)
);
create index ad_insights_actions_fetched_idx on ad_insights_actions (fetched_at);

-- Ad creatives, refreshed daily; creatives that disappear from Meta's listing are kept (their
-- ads' history still points at them), with the status Meta last gave.
create table meta_ad_creative (
    creative_id text primary key,
    ad_account_id text not null,
    name text,
    title text,
    body text,
    call_to_action_type text,
    object_type text,
    story_spec_type text,                     -- the object_story_spec key: link_data, video_data, …
    link_url text,                            -- the destination as the advertiser wrote it
    url_tags text,                            -- appended by Meta to the destination at click time
    landing_url text,                         -- link_url with url_tags appended
    landing_page text,                        -- scheme://host/path of landing_url, lower-cased host
    utm_source text,
    utm_medium text,
    utm_campaign text,
    utm_content text,
    utm_term text,
    url_params jsonb not null default '{}'::jsonb,  -- every parameter, decoded: name → [values]
    has_dynamic_params boolean not null default false,  -- {{…}} macros Meta fills at click time
    thumbnail_url text,
    image_url text,
    effective_object_story_id text,
    status text,
    raw jsonb not null default '{}'::jsonb,
    first_seen_at timestamptz not null default now(),
    synced_at timestamptz not null default now()
);
create index meta_ad_creative_account_idx on meta_ad_creative (ad_account_id);

alter table meta_ad add column if not exists creative_id text;
create index if not exists meta_ad_creative_id_idx on meta_ad (creative_id);
