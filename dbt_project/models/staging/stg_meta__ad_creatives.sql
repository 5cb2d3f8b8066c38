with source as (
    select * from {{ source('everreach', 'meta_ad_creative') }}
),

renamed as (
    select
        creative_id,
        ad_account_id,
        name as creative_name,
        title,
        body,
        call_to_action_type,
        object_type,
        story_spec_type,
        link_url,
        url_tags,
        landing_url,
        landing_page,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        utm_term,
        has_dynamic_params,
        thumbnail_url,
        image_url,
        effective_object_story_id,
        status as creative_status,
        first_seen_at,
        synced_at
    from source
)

select * from renamed
