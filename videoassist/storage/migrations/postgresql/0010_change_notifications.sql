-- videoassist schema, version 10: every node hears at once of the changes that decide who
-- may stay in a call. Whoever makes one (a node's API, the CLI, a statement typed in
-- psql) notifies the channel videoassist_changes in the same transaction, by these
-- triggers: PostgreSQL delivers the notification when the transaction commits, and
-- never if it rolls back. The payload is the table and the row's id ('users:7'). Each
-- node LISTENs on one connection of its own (cluster/changes.py) and looks at its calls
-- at once; its poll (VIDEOASSIST_REVOCATION_POLL_S) stays as the safety net. Only adds
-- a function and triggers: the previous release runs on this schema unchanged.

CREATE FUNCTION videoassist_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('videoassist_changes', TG_TABLE_NAME || ':' || OLD.id);
    ELSE
        PERFORM pg_notify('videoassist_changes', TG_TABLE_NAME || ':' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

-- A user disabled or enabled, or signed out everywhere (a role change, a password
-- reset: session_version), or deleted.
CREATE TRIGGER users_notify_change
    AFTER UPDATE OF disabled_at, session_version ON users FOR EACH ROW
    WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at
          OR OLD.session_version IS DISTINCT FROM NEW.session_version)
    EXECUTE FUNCTION videoassist_notify_change();
CREATE TRIGGER users_notify_delete
    AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION videoassist_notify_change();

-- A job closed (or opened again), or erased.
CREATE TRIGGER jobs_notify_change
    AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION videoassist_notify_change();
CREATE TRIGGER jobs_notify_delete
    AFTER DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION videoassist_notify_change();

-- A link withdrawn, or deleted.
CREATE TRIGGER invites_notify_change
    AFTER UPDATE OF revoked_at ON invites FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION videoassist_notify_change();
CREATE TRIGGER invites_notify_delete
    AFTER DELETE ON invites FOR EACH ROW EXECUTE FUNCTION videoassist_notify_change();

-- An API key revoked. Every request reads its key, so no node keeps one to forget:
-- this is for whoever listens (and for a cache, should a node ever keep one).
CREATE TRIGGER api_keys_notify_change
    AFTER UPDATE OF revoked_at ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION videoassist_notify_change();

-- A call ended: by its node, or by another that took its node for dead (the holder
-- then closes its connections, 1011 call_lost).
CREATE TRIGGER calls_notify_change
    AFTER UPDATE OF ended_at ON calls FOR EACH ROW
    WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION videoassist_notify_change();
