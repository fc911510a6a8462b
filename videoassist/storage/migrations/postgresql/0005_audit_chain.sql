-- videoassist schema, version 5: the audit log becomes a hash chain.
-- Each row carries the hash of the row before it (64 zeros for row 1) and its own:
-- SHA-256 over that hash and the canonical JSON of its fields (storage/chain.py,
-- docs/security.md). Rows written before this migration are chained as they are by
-- the migration's Python step (chain.seal_existing), which then appends an
-- 'audit.chained' row saying how many there were.
ALTER TABLE audit_log ADD COLUMN prev_hash text;  -- hex; NULL only before the step runs
ALTER TABLE audit_log ADD COLUMN hash text;       -- hex

-- Append-only, enforced by the database too. A new row must take the next id and
-- name the last row's hash; rows are never changed, deleted or truncated (the step
-- above seals the rows that have no hash yet, once). Appends from several connections
-- take turns on an advisory lock (storage/audit.py); this checks the result. Whoever
-- owns the table can drop these triggers: 'videoassist audit verify' is what tells.
CREATE FUNCTION audit_log_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_id   bigint;
    last_hash text;
BEGIN
    SELECT id, hash INTO last_id, last_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    IF NEW.hash IS NULL
       OR NEW.id IS DISTINCT FROM coalesce(last_id, 0) + 1
       OR NEW.prev_hash IS DISTINCT FROM coalesce(
            last_hash, '0000000000000000000000000000000000000000000000000000000000000000')
    THEN
        RAISE EXCEPTION 'audit_log: a new row must extend the hash chain'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER audit_log_append BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append();

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW WHEN (OLD.hash IS NOT NULL) EXECUTE FUNCTION audit_log_refuse();

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();

-- TRUNCATE fires no row trigger: it has its own.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
