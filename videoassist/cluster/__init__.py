"""Workers, nodes and placement: one server process per core, calls placed through the
database.

``videoassist serve`` with more than one worker (``VIDEOASSIST_WORKERS``, default one
per core) is a supervisor (``supervisor``): it does the one-time start-up (migrations,
key files, ending the calls a previous run left open), then starts N workers, each a
whole server with its own event loop, aiohttp app, aiortc peer connections and media
ports (with ``VIDEOASSIST_MEDIA_PORTS``, an equal slice of the range each, which the
supervisor gives on the worker's command line: ``media.network.split``). Every worker
listens on the same public HOST:PORT with SO_REUSEPORT: the kernel spreads new
connections over them, and clients keep one address.

Each worker is a **node** (``node``): a row in ``nodes`` (host, pid, worker slot,
internal address, heartbeat every second, load, draining), and an internal listener
(127.0.0.1 by default, ``VIDEOASSIST_INTERNAL_HOST``) that only the installation's
nodes use, behind a secret (``VIDEOASSIST_NODE_SECRET``, else generated into the data
directory). A **fleet** is several ``videoassist serve`` on several machines, each
with a routable internal address, on one PostgreSQL database and sharing their
secrets by settings (docs/deploy.md, Fleet): nothing here assumes the nodes share a
machine, only the database.

**Placement.** A call lives whole on one node: its WebSockets, its peer connections,
its media. The ``calls`` row records the node that holds it, and a unique index
allows one call in progress per job. When a participant's ``auth`` arrives at a node
(``api.ws``), the hub looks the job's call up (``Calls.place``, one
``BEGIN IMMEDIATE`` transaction, so two nodes placing the same job at once agree):

- held by this node: join here, as a server of one process does;
- held by another live node: carry the WebSocket there (``proxy``): replay the
  ``auth`` to that node's internal address with the client's address, then pipe the
  messages both ways until either side closes. Signalling is light; media (UDP) goes
  straight to the holder, whose ICE candidates are its own ports;
- none: place a new call on the least loaded live node (calls in progress, then
  connections; this one on a tie) and join there, directly or carried.

A node a connection was carried to never carries it further: if the call moved in
between (it ended and was placed again elsewhere), it answers with an internal close
code and the first node places again, at most three times.

**Duties done once.** Webhook delivery: every worker queues webhooks in the database.
On PostgreSQL every node delivers too, claiming each delivery it sends for a lease
(``FOR UPDATE SKIP LOCKED``; ``webhooks.emitter``), so no delivery is sent by two at
once and a dead node's claims come back when their lease ends. On SQLite worker 0
delivers (a new worker 0 when it dies), and sees other processes' commits by
``PRAGMA data_version``. The periodic duties (retention, pruning) run on one node at a
time (``duties``): on PostgreSQL the holder of a session advisory lock, which a node
loses with its connection; on SQLite worker 0.

**Revocation and job closing** work per node: each hub's watcher polls the database
(every ``VIDEOASSIST_REVOCATION_POLL_S``) for closed jobs, disabled or signed-out
users and withdrawn links, and acts on its own calls. An action taken through another
worker (or the CLI) reaches a call within that poll. On PostgreSQL the database also
notifies every node of such a change when it is committed (``changes``: one LISTEN
connection per node), and the watcher looks at once; the poll stays as the safety net
for when that connection is lost.

**Death** (``sweep``). A worker that dies is seen by the supervisor at once: its
node's calls are ended in the database (``call.ended`` webhooks), the connections
other workers carried to it are closed with 1011 ``call_lost`` (clients reconnect,
and get a new call), and a new worker starts in its slot. A node not heard from for
``VIDEOASSIST_NODE_TIMEOUT_S`` (30 s), wherever it runs, is taken for dead by the
others: after each heartbeat every node tries to claim the silent ones (a conditional
UPDATE: one claims each), ends the calls of those it claimed, and closes the
connections it carries to calls that have ended. Placement passes a silent node by
too, and ends and places again a call it held. A starting node ends only the calls of
its own machine's nodes whose process is gone.

**Draining.** A draining node (SIGTERM) takes no new call: placement passes it by,
and a join to a job with no call in progress is refused. Its calls go on and take
newcomers, whoever's node they came through.

**Metrics.** ``GET /metrics`` on any worker gathers the others' over their internal
addresses (``gather``) and labels every sample ``worker="N"``.
"""
