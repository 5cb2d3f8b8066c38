{#- `expr` with Meta's dynamic URL parameters filled in from the ad's own columns, as Meta
    fills them in per click: campaign and ad names, campaign / ad set / ad ids. Expects the
    columns campaigns.campaign_name, ads.ad_name, ads.meta_campaign_id, ads.meta_adset_id and
    ads.meta_ad_id in scope. -#}
{% macro fill_dynamic_parameters(expr) -%}
    {%- set open = '{' ~ '{' -%}
    {%- set fills = [
        ('campaign.name', "coalesce(campaigns.campaign_name, '')"),
        ('ad.name', "coalesce(ads.ad_name, '')"),
        ('campaign.id', "coalesce(ads.meta_campaign_id, '')"),
        ('adset.id', "coalesce(ads.meta_adset_id, '')"),
        ('ad.id', "ads.meta_ad_id"),
    ] -%}
    {%- set ns = namespace(sql=expr) -%}
    {%- for name, value in fills -%}
        {%- set ns.sql = "replace(" ~ ns.sql ~ ", '" ~ open ~ name ~ "}}', " ~ value ~ ")" -%}
    {%- endfor -%}
    {{ ns.sql }}
{%- endmacro %}
