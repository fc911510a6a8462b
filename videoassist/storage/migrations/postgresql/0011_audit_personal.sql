-- videoassist schema, version 11: personal data in the audit log that can be erased
-- without breaking the hash chain (storage/chain.py, docs/security.md).
-- A row's personal values (a customer's IP address) are kept in 'personal', as the
-- canonical JSON {"nonce": 32 random hex digits, "values": {...}}; the chained detail
-- holds only its commitment, {"personal": {"fields": [...], "sha256": hex SHA-256 of
-- that text}}. Erasing sets 'personal' to NULL: the chain still holds, and the row
-- that erased it names it ('redacted'), which 'videoassist audit verify' checks.
-- Rows written before this version have no 'personal' (NULL, nothing committed).
ALTER TABLE audit_log ADD COLUMN personal text;

-- The rows whose personal data an erasure looks for: only those still holding some.
CREATE INDEX audit_log_personal ON audit_log(target) WHERE personal IS NOT NULL;

-- Still append-only, but for one change: 'personal' set to NULL, every other column
-- as it was. (TRUNCATE and DELETE stay refused by migration 0005's triggers.)
CREATE FUNCTION audit_log_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.personal IS NULL
       AND ROW(NEW.id, NEW.created_at, NEW.actor, NEW.action, NEW.target, NEW.detail,
               NEW.prev_hash, NEW.hash)
           IS NOT DISTINCT FROM
           ROW(OLD.id, OLD.created_at, OLD.actor, OLD.action, OLD.target, OLD.detail,
               OLD.prev_hash, OLD.hash)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: only its personal data may be erased'
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

DROP TRIGGER audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW WHEN (OLD.hash IS NOT NULL) EXECUTE FUNCTION audit_log_erase_only();
