"""``run_hook``: the ``on_deploy`` / ``on_undeploy`` command, run after a change.

The command is split like a shell would (``shlex``) but run without one, with
the artifact's path as last argument; its exit status and output are logged,
never raised: a failing reload must not undo a deployment the farm agreed on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from pathlib import Path
from typing import Final

logger = logging.getLogger("clustersession.deploy")

HOOK_TIMEOUT: Final = 300.0
OUTPUT_LIMIT: Final = 4000  # characters of output kept in the log


async def run_hook(command: str, event: str, path: Path) -> int | None:
    """Run ``command path``; its exit status (None if it could not run or timed out)."""
    argv = [*shlex.split(command), str(path)]
    env = {
        **os.environ,
        "CLUSTERSESSION_FARM_EVENT": event,
        "CLUSTERSESSION_ARTIFACT": str(path),
        "CLUSTERSESSION_ARTIFACT_NAME": path.name,
    }
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    except OSError as exc:
        logger.error("on_%s command %r could not start: %s", event, command, exc)
        return None
    try:
        output, _ = await asyncio.wait_for(process.communicate(), HOOK_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        logger.error("on_%s command %r timed out after %.0f s", event, command, HOOK_TIMEOUT)
        return None
    text = output.decode("utf-8", "replace")[-OUTPUT_LIMIT:].rstrip()
    level = logging.INFO if process.returncode == 0 else logging.ERROR
    logger.log(
        level,
        "on_%s %s exited %s%s",
        event,
        path.name,
        process.returncode,
        f"; output:\n{text}" if text else "",
    )
    return process.returncode
