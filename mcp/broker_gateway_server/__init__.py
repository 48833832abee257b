"""The broker stage process: `python -m mcp.broker_gateway_server.app`."""
