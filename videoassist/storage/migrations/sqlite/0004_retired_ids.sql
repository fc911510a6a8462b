-- videoassist schema, version 4: ids are never given twice.
-- SQLite gives a new row the highest id + 1, so erasing the newest job (or purging
-- the newest snapshot) would hand its id to the next one: a stale link, an audit line
-- or an integration's record would then name someone else's job. This table keeps
-- the highest id each table ever had; new jobs and snapshots are numbered above it.
CREATE TABLE retired_ids (
    name   TEXT PRIMARY KEY,       -- the table
    max_id INTEGER NOT NULL
);
