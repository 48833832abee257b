"""The report stage process: `python -m mcp.report_server.app`."""
