with source as (
    select * from {{ source('everreach', 'social_account_insights') }}
),

renamed as (
    select
        platform,
        account_id,
        date as metric_date,
        metric,
        period,
        value as metric_value,
        fetched_at
    from source
)

select * from renamed
