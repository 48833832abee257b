"""`python -m mcp.signal_server.app`: runs :mod:`v13.stages.signal`."""

from v13.cli import run_main
from v13.stages.signal import main

if __name__ == "__main__":
    raise SystemExit(run_main("python -m mcp.signal_server.app", main))
