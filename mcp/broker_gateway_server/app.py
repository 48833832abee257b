"""`python -m mcp.broker_gateway_server.app`: runs :mod:`v13.stages.broker`."""

from v13.cli import run_main
from v13.stages.broker import main

if __name__ == "__main__":
    raise SystemExit(run_main("python -m mcp.broker_gateway_server.app", main))
