-- videoassist schema, version 4: ids are never given twice.
-- Jobs and snapshots are numbered by the code (Transaction.next_id) above the highest
-- id each table ever had, which this table keeps: erasing the newest job must not hand
-- its id to the next one (a stale link, an audit line or an integration's record would
-- then name someone else's job).
CREATE TABLE retired_ids (
    name   text PRIMARY KEY,       -- the table
    max_id bigint NOT NULL
);
