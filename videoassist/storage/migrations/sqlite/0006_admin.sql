-- videoassist schema, version 6: administration.

-- Bumped when an admin changes a user's role or resets their password: staff tokens
-- carry the version they were issued under, and an older one is refused.
ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;

-- What the expert recorded when the call ended: was the problem fixed on this visit?
-- NULL: nobody answered.
ALTER TABLE calls ADD COLUMN first_time_fix INTEGER CHECK (first_time_fix IN (0, 1));
ALTER TABLE calls ADD COLUMN outcome_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE calls ADD COLUMN outcome_at REAL;

CREATE INDEX calls_started ON calls(started_at);
CREATE INDEX participants_user ON participants(user_id) WHERE user_id IS NOT NULL;
CREATE INDEX invites_created ON invites(created_at) WHERE purpose = 'join';
