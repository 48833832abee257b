"""The harvest stage process: `python -m mcp.harvest_server.app`."""
