-- videoassist schema, version 5: the audit log becomes a hash chain.
-- Each row carries the hash of the row before it (64 zeros for row 1) and its own:
-- SHA-256 over that hash and the canonical JSON of its fields (storage/chain.py,
-- docs/security.md). Rows written before this migration are chained as they are by
-- the migration's Python step (chain.seal_existing), which then appends an
-- 'audit.chained' row saying how many there were.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;  -- hex; NULL only before the step runs
ALTER TABLE audit_log ADD COLUMN hash TEXT;       -- hex

-- Append-only, enforced by the database too. A new row must take the next id and
-- name the last row's hash; rows are never changed or deleted (the step above seals
-- the rows that have no hash yet, once). Whoever can edit the file can drop these
-- triggers: 'videoassist audit verify' is what tells.
CREATE TRIGGER audit_log_append BEFORE INSERT ON audit_log
WHEN NEW.hash IS NULL
  OR NEW.id IS NOT coalesce((SELECT max(id) FROM audit_log), 0) + 1
  OR NEW.prev_hash IS NOT coalesce(
       (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1),
       '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'audit_log: a new row must extend the hash chain');
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
