-- videoassist schema, version 12: the names people see in a call, and where a link was
-- sent. A staff user's display name ('Anna Berg'), shown instead of their username
-- where set; the name a join link was made out to (a customer's, 'Mr Keller'), shown
-- instead of the role ('Customer') to everyone in the call; and the address or number
-- the server sent it to, for sending a new link there. The last two are personal data:
-- retention clears them with the job's chat (storage/jobs.py, purge), erasing the job
-- erases them. Only adds columns that may be NULL: the previous release runs on this
-- schema unchanged.
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE invites ADD COLUMN name TEXT;
ALTER TABLE invites ADD COLUMN sent_to TEXT;
