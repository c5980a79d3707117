"""A ``gunicorn.conf.py`` with the optional hooks (``-c python:tests.support.gunicorn_conf``).

Each worker joins the cluster (and fetches its sessions) before it accepts a
request, and leaves as soon as it is told to exit.
"""

from clustersession.gunicorn import post_fork, post_worker_init, worker_exit

__all__ = ["post_fork", "post_worker_init", "worker_exit"]
