-- videoassist schema, version 8: state every server process shares (several workers
-- on one database), where each had its own in memory: what it can read of the calls
-- another process carries, and the failed sign-ins they all count.

-- Whether the participant's media connection (their PeerConnection with the process
-- that holds the call) is up, as that process last wrote it. Written when it changes,
-- not per packet.
ALTER TABLE participants ADD COLUMN media_connected INTEGER NOT NULL DEFAULT 0
    CHECK (media_connected IN (0, 1));

-- Snapshots being made: a row from the capture until the snapshot is stored. Erasing
-- the job waits for them; a row older than a minute is a process that died meanwhile,
-- and no longer counts.
CREATE TABLE snapshots_in_progress (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    started_at REAL NOT NULL
);
CREATE INDEX snapshots_in_progress_job ON snapshots_in_progress(job_id);

-- Who is in the calls in progress (the calls themselves: calls_live_job, version 7),
-- read on every admin view and erase.
CREATE INDEX participants_open ON participants(call_id) WHERE left_at IS NULL;

-- Failed sign-ins, counted by every process together (they were in each process's
-- memory): per username as typed, case-folded ('user'), and per client address
-- ('client'). Rows past the sign-in window are deleted at the next failure.
CREATE TABLE signin_failures (
    id        INTEGER PRIMARY KEY,
    scope     TEXT NOT NULL CHECK (scope IN ('user', 'client')),
    key       TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX signin_failures_key ON signin_failures(scope, key, failed_at);
CREATE INDEX signin_failures_at ON signin_failures(failed_at);
