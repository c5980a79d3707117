"""Optional gunicorn server hooks: each worker joins the cluster eagerly and leaves cleanly.

Without them everything works: a worker's cluster member starts with its first
request and leaves at exit. With them, a worker joins (and finishes its state
transfer) before it accepts a request, and leaves as soon as it is told to
exit. In ``gunicorn.conf.py``::

    from clustersession.gunicorn import post_fork, post_worker_init, worker_exit

``post_fork`` starts what the master preloaded (``preload_app = True``);
``post_worker_init`` what the worker itself loaded (the default), the Django
engine included (it is built from the settings then, not at the first request).
Neither ever runs in the master, which must own no cluster sockets its workers
would inherit.
"""

from __future__ import annotations

from typing import Any

from .sessions.threaded import start_all, stop_all


def post_fork(server: Any, worker: Any) -> None:
    """After the fork, in the worker: start the members of a preloaded app."""
    start_all()


def post_worker_init(worker: Any) -> None:
    """In the worker, once it has loaded the app: start its members."""
    start_all()


def worker_exit(server: Any, worker: Any) -> None:
    """In the worker, as it exits: leave the cluster."""
    stop_all()
