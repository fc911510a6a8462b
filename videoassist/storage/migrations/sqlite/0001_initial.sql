-- videoassist schema, version 1.
-- Times are Unix seconds (REAL, UTC). Ids are INTEGER PRIMARY KEYs.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'expert', 'technician')),
    password_hash TEXT,                -- NULL until the user sets one through a link
    created_at    REAL NOT NULL,
    disabled_at   REAL                 -- NULL while the user is active
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    title        TEXT NOT NULL,
    external_ref TEXT,                 -- the company's work-order reference
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_by   INTEGER REFERENCES users(id),
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    closed_at    REAL
);
CREATE INDEX jobs_status ON jobs(status, created_at);
CREATE INDEX jobs_external_ref ON jobs(external_ref);

-- One-time links. purpose 'join': a job and a role; purpose 'password': a user.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    purpose     TEXT NOT NULL CHECK (purpose IN ('join', 'password')),
    job_id      INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('customer', 'technician', 'admin', 'expert')),
    created_by  INTEGER REFERENCES users(id),
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    used_at     REAL,
    revoked_at  REAL,
    CHECK ((purpose = 'join' AND job_id IS NOT NULL AND role IN ('customer', 'technician'))
        OR (purpose = 'password' AND user_id IS NOT NULL))
);
CREATE INDEX invites_job ON invites(job_id);

CREATE TABLE calls (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    started_at REAL NOT NULL,
    ended_at   REAL
);
CREATE INDEX calls_job ON calls(job_id);

-- One row per signalling connection that joined a call.
CREATE TABLE participants (
    id           INTEGER PRIMARY KEY,
    call_id      INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('customer', 'technician', 'admin', 'expert')),
    display_name TEXT NOT NULL,
    user_id      INTEGER REFERENCES users(id),
    invite_id    INTEGER REFERENCES invites(id),
    joined_at    REAL NOT NULL,
    left_at      REAL
);
CREATE INDEX participants_call ON participants(call_id);

-- The job's timeline: call started/ended, invite created/redeemed, and so on.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    call_id    INTEGER REFERENCES calls(id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',   -- JSON
    created_at REAL NOT NULL
);
CREATE INDEX events_job ON events(job_id, created_at);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    job_id         INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    call_id        INTEGER REFERENCES calls(id) ON DELETE CASCADE,
    participant_id INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    sender_name    TEXT NOT NULL,
    sender_role    TEXT NOT NULL,
    text           TEXT NOT NULL,
    created_at     REAL NOT NULL
);
CREATE INDEX messages_job ON messages(job_id, created_at);

-- Security-relevant events. Never holds a token, password or key.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    actor      TEXT NOT NULL,          -- 'user:12', 'invite:7', 'cli', 'system', 'client:ADDR'
    action     TEXT NOT NULL,          -- 'signin.ok', 'signin.failed', 'invite.created', ...
    target     TEXT,
    detail     TEXT NOT NULL DEFAULT '{}'  -- JSON
);
CREATE INDEX audit_log_created ON audit_log(created_at);
