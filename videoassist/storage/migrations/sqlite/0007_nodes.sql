-- videoassist schema, version 7: nodes, and the node that holds each call.

-- A node is one server process that holds calls: a worker of `videoassist serve`
-- (videoassist.cluster). It heartbeats while it lives; a node whose heartbeat is old,
-- or that stopped, holds nothing any more.
CREATE TABLE nodes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never given again
    host         TEXT NOT NULL,     -- the machine's name
    pid          INTEGER NOT NULL,  -- its process on that machine
    worker       INTEGER,           -- its slot under the supervisor; NULL: a server of one process
    address      TEXT NOT NULL,     -- HOST:PORT where the other nodes reach it
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    load         INTEGER NOT NULL DEFAULT 0,  -- connections in its calls, at the last heartbeat
    draining     INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1)),
    stopped_at   REAL
);
CREATE INDEX nodes_live ON nodes(heartbeat_at) WHERE stopped_at IS NULL;

-- The node that holds a call in progress: its WebSockets, peer connections and media.
ALTER TABLE calls ADD COLUMN node_id INTEGER REFERENCES nodes(id) ON DELETE SET NULL;

-- One call in progress per job, whichever node places it: two participants joining at
-- once through two nodes end up in the same call. A server of one process never had
-- two, but a crash between two starts could have left one open: the older one ends.
UPDATE calls SET ended_at = started_at
    WHERE ended_at IS NULL
      AND id NOT IN (SELECT max(id) FROM calls WHERE ended_at IS NULL GROUP BY job_id);
CREATE UNIQUE INDEX calls_live_job ON calls(job_id) WHERE ended_at IS NULL;
CREATE INDEX calls_live_node ON calls(node_id) WHERE ended_at IS NULL;
