-- videoassist schema, version 13: the notify webhook (a join link to a company's SMS or
-- mail gateway) goes through the webhook deliveries' queue: persisted, claimed by one
-- node at a time, retried, every attempt recorded. Only columns and an index added
-- (expand): the release before runs on this schema.

-- Where a delivery goes: 'webhook' (an event, to VIDEOASSIST_WEBHOOK_URL, signed) or
-- 'notify' (a join link, to VIDEOASSIST_NOTIFY_URL). A notify delivery's body is sealed
-- (AES-GCM, under a key derived from the snapshot key, which is not in the database):
-- it holds a live link.
ALTER TABLE webhook_deliveries ADD COLUMN channel text NOT NULL DEFAULT 'webhook'
    CHECK (channel IN ('webhook', 'notify'));
-- The link a notify delivery sends: checked before every attempt, so that a link
-- withdrawn or expired meanwhile is never sent. Its delivery goes with it.
ALTER TABLE webhook_deliveries ADD COLUMN invite_id bigint
    REFERENCES invites(id) ON DELETE CASCADE;
CREATE INDEX webhook_deliveries_invite ON webhook_deliveries(invite_id)
    WHERE invite_id IS NOT NULL;
