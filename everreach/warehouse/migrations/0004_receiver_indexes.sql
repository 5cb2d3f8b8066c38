-- Storing an outbound message looks up receipts whose watermark already covers it
-- (Messenger/Instagram deliveries and reads arrive as watermarks per contact).
create index if not exists message_delivery_event_watermark_idx
    on message_delivery_event (platform, business_account_id, contact_id, watermark)
    where watermark is not null;
