"""A gateway alone in its own process, for the restart tests:

    python -m tests.gateway.serve_gateway DATA_DIR SERVICES_TARGET PORT_FILE

It serves Generation on a free port, writes the port to PORT_FILE once it is SERVING, and runs until
SIGTERM (graceful) or SIGKILL (the crash the tests simulate).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from services.common.logs import configure_logging
from services.common.server import KinoServer
from services.common.settings import load_settings
from services.gateway.servicer import registration


async def serve(data_dir: Path, services_target: str, port_file: Path) -> None:
    settings = load_settings(
        env={},
        data_dir=data_dir,
        server={"port": 0, "metrics_port": -1},
        gateway={"services_target": services_target},
    )
    server = KinoServer(settings.server, [registration(settings)])
    await server.start()
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(server.port))
    os.replace(partial, port_file)
    await server.serve_until_signal()


if __name__ == "__main__":
    configure_logging("INFO")
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
