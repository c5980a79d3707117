"""Cluster benchmark: what replication costs and how fast it is, on 127.0.0.1.

Run with ``.venv/bin/python -m bench.cluster`` from the repository root (about 3
minutes); ``--quick`` for a ~60 s smoke run, ``--json PATH`` to keep the results,
``--help`` for the knobs. Needs ``wrk`` (``apt-get install -y wrk``) and
``uvicorn[standard]`` in the venv. Everything binds to 127.0.0.1 only; multicast
heartbeats stay on the loopback interface, on a random group port per cluster so
that concurrent runs do not meet.

Four figures, each printed with its target and MET/MISS, one module each:

1. :mod:`.throughput`: a 3-node cluster (``GET /write``: a counter incremented in the
   session, so every request replicates one delta to two peers), async mode
   (``channel_send_options = 8``) and sync mode (6), as a ratio to one standalone
   node (``ClusterSessionMiddleware(app, secret_key=...)``, no config). Seven uvicorn
   processes (1 standalone + 2 clusters of 3, configured by ``CLUSTERSESSION_*``
   variables) run at once; wrk (1 thread) drives node1 of each in interleaved,
   rotated rounds and the medians are compared. Target: async >= 0.85x.
2. :mod:`.lag`: replication lag at about 1,000 writes/s, from a write's response on
   node1 (the ASGI ``send`` of its last body chunk) to the ``attribute_replaced``
   listener on node2 seeing the new counter value. Measured twice: both nodes'
   middlewares in this process on one event loop (real channels over TCP), and node2
   as a uvicorn subprocess (the listener records ``time.perf_counter()``, the
   system-wide ``CLOCK_MONOTONIC``, so both processes' stamps compare). Target: p99 < 5 ms.
3. :mod:`.deltas`: deltas per second node1 delivers to two peers: node1 (a
   ``DeltaManager`` in this process) commits one-change requests as fast as it can;
   node2 and node3 (uvicorn subprocesses) count what they applied
   (``deltas_received``). The rate is deltas applied on *both* peers per second, the
   median of ``--rounds`` pushes to the same nodes. Target: 50,000/s.
4. :mod:`.state`: state transfer of 100,000 sessions of ~1 KiB: node1 (a subprocess)
   creates them through ``DeltaManager.commit`` and reads each once through
   ``Session``, as its users' requests would; node2 (another subprocess) times
   ``await manager.start()`` until it holds them all (``send_all_sessions_size``
   1000). Target: < 5 s. Then the **resident memory** (``VmRSS`` of
   ``/proc/<pid>/status``, whole process: interpreter, Starlette, the middleware and
   the sessions) of each node holding them. Target: < 400 MB.

The shared parts: :mod:`.app` (the node app, ``uvicorn bench.cluster.app:create_app
--factory``), :mod:`.nodes` (processes, ports, HTTP to them), :mod:`.profiler`
(``--profile``), :mod:`.options` (what a run is asked for, the targets) and
:mod:`.cli` (arguments, the results table, the state-transfer workers' entry).

The machine of record has 2 cores: 3 nodes and wrk share them, so the cluster
ratios understate what a real farm (a node per host) gets.
"""
