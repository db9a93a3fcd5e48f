"""A plugin process for the start-race tests: it imports everything, prints ``ready``, and
starts its server only when a line arrives on stdin, so a test can release two at once.

Usage: python racing_plugin.py NAME PLUGINS_DIR

Then it prints ``listening`` and serves (``Test.Pid`` answers its pid) until SIGTERM, or
prints ``refused: <message>`` and exits with the start error's exit code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from memory_plugin import Memory

from infrakit import errors
from infrakit.rpc import server


async def whoami(params: dict[str, Any]) -> int:
    return os.getpid()


async def main(name: str, directory: str) -> int:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    running = server.Server(name, instance=Memory(), plugins_dir=directory,
                            extra_methods={"Test.Pid": whoami})
    try:
        await running.start()
    except errors.InfrakitError as exc:
        print(f"refused: {exc.message}", flush=True)
        return exc.exit_code
    print("listening", flush=True)
    try:
        await stopping.wait()
    finally:
        await running.stop()
    return 0


if __name__ == "__main__":
    print("ready", flush=True)
    sys.stdin.readline()  # the starting gun: blocking, so both racers wake alike
    raise SystemExit(asyncio.run(main(sys.argv[1], sys.argv[2])))
