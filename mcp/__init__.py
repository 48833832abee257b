"""Thin process shells of the four stages (names fixed by the run contract).

Not Model Context Protocol servers; the package name collides with the official MCP SDK's
import name, so do not install both in one environment.
"""
