"""``python -m bench.cluster``: the cluster benchmark (see the package docstring)."""

import sys

from bench.cluster.cli import main

sys.exit(main())
