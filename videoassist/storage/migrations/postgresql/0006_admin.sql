-- videoassist schema, version 6: administration.

-- Bumped when an admin changes a user's role or resets their password: staff tokens
-- carry the version they were issued under, and an older one is refused.
ALTER TABLE users ADD COLUMN session_version integer NOT NULL DEFAULT 0;

-- What the expert recorded when the call ended: was the problem fixed on this visit?
-- NULL: nobody answered.
ALTER TABLE calls ADD COLUMN first_time_fix integer CHECK (first_time_fix IN (0, 1));
ALTER TABLE calls ADD COLUMN outcome_by bigint REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN outcome_at double precision;

CREATE INDEX calls_started ON calls(started_at);
CREATE INDEX participants_user ON participants(user_id) WHERE user_id IS NOT NULL;
CREATE INDEX invites_created ON invites(created_at) WHERE purpose = 'join';
