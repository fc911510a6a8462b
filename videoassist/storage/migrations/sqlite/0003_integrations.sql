-- videoassist schema, version 3: integrations (API keys in, webhooks out).

-- Keys a company's systems (CRM, ticketing) call the API with. Only the SHA-256 of
-- the key is stored; the key itself is shown once, when it is made.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,  -- SHA-256 of the whole key, prefix included
    hint         TEXT NOT NULL,         -- the key's last 4 characters, to tell keys apart
    scopes       TEXT NOT NULL,         -- JSON list, e.g. ["jobs:create", "jobs:read"]
    created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,  -- NULL: the CLI
    created_at   REAL NOT NULL,
    last_used_at REAL,
    revoked_at   REAL
);

-- One outgoing webhook event. The body is kept byte for byte: every attempt sends
-- (and signs) the same bytes. Erasing a job erases its deliveries.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT NOT NULL UNIQUE,  -- the delivery id receivers deduplicate by
    type            TEXT NOT NULL,         -- 'job.created', 'call.started', ...
    job_id          INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    body            BLOB NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,                  -- NULL once delivered or given up
    delivered_at    REAL,
    failed_at       REAL,                  -- when the last allowed attempt failed
    CHECK ((next_attempt_at IS NULL) = (delivered_at IS NOT NULL OR failed_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created_at);

-- Every attempt at a delivery and how it went.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    started_at  REAL NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,                   -- the receiver's HTTP status; NULL if none came
    error       TEXT                       -- why it failed: 'timeout', 'HTTP 500', ...
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);
