"""``python -m demo_app``: the local 3-node demo cluster (see demo_app.cluster)."""

from __future__ import annotations

import sys

from .cluster import main

if __name__ == "__main__":
    sys.exit(main())
