-- videoassist schema, version 2: snapshots (encrypted at rest), job notes, retention.

-- Days to keep a job's snapshots, chat and events; NULL: the server's default.
ALTER TABLE jobs ADD COLUMN retention_days INTEGER
    CHECK (retention_days IS NULL OR retention_days > 0);

-- A job's data key, wrapped with AES-256-GCM by the key-encryption key, which is
-- never in the database. Deleting the row makes the job's images undecryptable.
CREATE TABLE job_keys (
    job_id      INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    kek_id      TEXT NOT NULL,         -- names the key-encryption key that wrapped it
    wrapped_key BLOB NOT NULL,         -- 12-byte nonce || AES-GCM ciphertext and tag
    created_at  REAL NOT NULL
);

-- The clean picture a snapshot was captured from, kept so it can be annotated again.
CREATE TABLE frames (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    captured_at REAL NOT NULL,
    sealed      BLOB NOT NULL          -- the JPEG, sealed with the job's data key
);
CREATE INDEX frames_job ON frames(job_id, captured_at);

-- An annotated snapshot. Annotating again adds a version; the original stays.
CREATE TABLE snapshots (
    id                 INTEGER PRIMARY KEY,
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    call_id            INTEGER REFERENCES calls(id) ON DELETE SET NULL,
    frame_id           INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    original_id        INTEGER REFERENCES snapshots(id) ON DELETE CASCADE,  -- NULL: version 1
    version            INTEGER NOT NULL CHECK (version >= 1),
    author_participant INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    author_user        INTEGER REFERENCES users(id) ON DELETE SET NULL,
    author_name        TEXT NOT NULL,
    author_role        TEXT NOT NULL,
    camera_participant INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    camera_name        TEXT NOT NULL,
    camera_role        TEXT NOT NULL,
    created_at         REAL NOT NULL,
    width              INTEGER NOT NULL,
    height             INTEGER NOT NULL,
    shapes             TEXT NOT NULL,  -- JSON list of shapes (docs/protocol.md)
    caption            TEXT,
    sha256             TEXT NOT NULL,  -- hex SHA-256 of the JPEG
    byte_size          INTEGER NOT NULL,
    sealed             BLOB NOT NULL,  -- the annotated JPEG, sealed with the job's data key
    CHECK ((original_id IS NULL) = (version = 1))
);
CREATE INDEX snapshots_job ON snapshots(job_id, created_at);
CREATE UNIQUE INDEX snapshots_version ON snapshots(coalesce(original_id, id), version);

-- Staff notes on a job.
CREATE TABLE notes (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
    author_name TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX notes_job ON notes(job_id, created_at);
