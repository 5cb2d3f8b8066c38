with source as (
    select * from {{ source('auth', 'users') }}
),

renamed as (
    select
        id as user_id,
        lower(trim(email)) as email,
        phone,
        {{ normalize_phone('phone') }} as phone_normalized,
        encode(sha256(convert_to(id::text, 'UTF8')), 'hex') as user_id_sha256,
        created_at
    from source
)

select * from renamed
