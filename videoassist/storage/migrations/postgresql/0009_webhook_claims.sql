-- videoassist schema, version 9: webhook deliveries claimed by one node at a time, and
-- the node that made each attempt. Only columns added (expand): the release before
-- runs on this schema.

-- The node sending a delivery now, and until when its claim holds: a node that dies
-- mid-attempt holds it no longer than that, then another node takes it over. While a
-- delivery is claimed its next_attempt_at is the lease's end too, so that whatever
-- reads next_attempt_at alone (the release before) does not send it meanwhile.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by bigint;  -- nodes.id
ALTER TABLE webhook_deliveries ADD COLUMN lease_until double precision;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_claim
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL));

-- The node that made the attempt (nodes.id; nodes are forgotten a week after they stop,
-- so no foreign key). NULL: made by the release before. An attempt is recorded when it
-- begins, as 'in progress', and its outcome written when it ends.
ALTER TABLE webhook_attempts ADD COLUMN node_id bigint;
