-- videoassist schema, version 11: personal data in the audit log that can be erased
-- without breaking the hash chain (storage/chain.py, docs/security.md).
-- A row's personal values (a customer's IP address) are kept in 'personal', as the
-- canonical JSON {"nonce": 32 random hex digits, "values": {...}}; the chained detail
-- holds only its commitment, {"personal": {"fields": [...], "sha256": hex SHA-256 of
-- that text}}. Erasing sets 'personal' to NULL: the chain still holds, and the row
-- that erased it names it ('redacted'), which 'videoassist audit verify' checks.
-- Rows written before this version have no 'personal' (NULL, nothing committed).
ALTER TABLE audit_log ADD COLUMN personal TEXT;

-- The rows whose personal data an erasure looks for: only those still holding some.
CREATE INDEX audit_log_personal ON audit_log(target) WHERE personal IS NOT NULL;

-- Still append-only, but for one change: 'personal' set to NULL, every other column
-- as it was.
DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN OLD.hash IS NOT NULL AND NOT (
    NEW.personal IS NULL
    AND NEW.id IS OLD.id AND NEW.created_at IS OLD.created_at AND NEW.actor IS OLD.actor
    AND NEW.action IS OLD.action AND NEW.target IS OLD.target AND NEW.detail IS OLD.detail
    AND NEW.prev_hash IS OLD.prev_hash AND NEW.hash IS OLD.hash)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: only its personal data may be erased');
END;
