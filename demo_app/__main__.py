"""`python -m demo_app`: serve the demo on one node (the cluster demo comes later)."""

from __future__ import annotations

import logging

import uvicorn

logger = logging.getLogger("clustersession.demo")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("clustersession demo: open http://127.0.0.1:8001/  (Ctrl-C stops it)")
    uvicorn.run("demo_app.app:app", host="127.0.0.1", port=8001, log_level="info")


if __name__ == "__main__":
    main()
