"""`python -m mcp.harvest_server.app`: runs :mod:`v13.stages.harvest`."""

from v13.cli import run_main
from v13.stages.harvest import main

if __name__ == "__main__":
    raise SystemExit(run_main("python -m mcp.harvest_server.app", main))
