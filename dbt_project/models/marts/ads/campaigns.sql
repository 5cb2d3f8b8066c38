-- One row per EverReach campaign with its Meta ids: the campaign dimension of the semantic
-- layer and of BI tools (names beside the campaign_id the other marts carry).
select
    campaign_id,
    campaign_name,
    meta_campaign_id,
    meta_ad_account_id,
    campaign_source
from {{ ref('stg_everreach__campaigns') }}
