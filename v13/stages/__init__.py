"""The four stage processes' main loops; ``mcp/<stage>_server/app.py`` are thin shells over these."""
