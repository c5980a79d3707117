"""The scaling curve: ``delta`` vs ``backup`` (``backups = 1``) on 2, 3, 5 and 8 nodes.

Run with ``.venv/bin/python -m bench.scaling`` (or ``make bench-scaling``) from the
repository root; ``--quick`` for a smoke run, ``--help`` for the knobs. Every node is
a uvicorn process on 127.0.0.1 (random HTTP ports, multicast heartbeats on the
loopback interface on a random group port per cluster): loopback processes, not
namespaces, so that no veth or namespace plumbing shares the two cores with them.

For each node count ``N`` and each manager, one cluster at a time (the two managers
alternate which goes first, from one count to the next, against drift):

1. ``N - 1`` nodes start; every one of them creates its share of the sessions
   (``--sessions``, 100,000) through its manager (``/bench/bulk``: as many logins
   would, without 100,000 HTTP round trips) and the cluster settles.
2. Node ``N`` starts; **time to ready**: from its spawn to ``/readyz`` answering 200
   (and from its first answer, 503, to 200: the join alone, without the interpreter's
   start).
3. Once every copy is where it belongs: **memory per node**, ``VmRSS`` of each node
   (what a user sees) and the records it holds (sessions, proxy entries).
4. **Aggregate throughput**: a wrk per node at once, each replaying the cookies of
   users who logged in on that node (:mod:`.load`): the balancer the bench stands
   for is a sticky one, as HAProxy on the route suffix would be, without HAProxy's
   own process on the two cores. **Bytes per write**: the bytes every node's channel
   sent to its peers (``ChannelStats.peers``) during the run, over the writes served.

Modules: :mod:`.app` (the node), :mod:`.cluster` (processes, fill, join, settle),
:mod:`.load` (wrk on every node), :mod:`.plots` (the PNGs), :mod:`.cli`.
"""
