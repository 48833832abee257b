"""`python -m mcp.report_server.app`: runs :mod:`v13.stages.report`."""

from v13.cli import run_main
from v13.stages.report import main

if __name__ == "__main__":
    raise SystemExit(run_main("python -m mcp.report_server.app", main))
