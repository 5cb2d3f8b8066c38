with source as (
    select * from {{ source('everreach', 'conversation_thread') }}
),

renamed as (
    select
        thread_id,
        platform,
        business_account_id,
        contact_id,
        contact_name,
        user_id,
        status as thread_status,
        referral_source,
        nullif(referral_ad_id, '') as referral_ad_id,
        nullif(referral_ref, '') as referral_ref,
        nullif(ctwa_clid, '') as ctwa_clid,
        (
            nullif(referral_ad_id, '') is not null or nullif(ctwa_clid, '') is not null
            or upper(coalesce(referral_source, '')) in ('ADS', 'AD')
        ) as started_from_ad,
        first_message_at,
        last_message_at,
        created_at,
        updated_at
    from source
)

select * from renamed
