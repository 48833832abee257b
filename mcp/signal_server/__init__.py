"""The signal stage process: `python -m mcp.signal_server.app`."""
