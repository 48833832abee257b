"""V13: the domain library of the supervised market-microstructure pipeline.

Config, row contracts, segment streams, deadletter, checkpoints and signal sinks; the process
shells in ``mcp/`` and the supervisor in ``orchestrator/`` are built on these.
"""

from __future__ import annotations

from v13.checkpoint import Checkpoint
from v13.config import Config, load_config
from v13.contracts import decode_row, encode_row
from v13.deadletter import Deadletter
from v13.errors import ConfigError, ContractError, UsageError, V13Error
from v13.layout import Layout
from v13.reader import StreamReader
from v13.segments import Position, SegmentFollower, SegmentWriter
from v13.sinks import SignalSink, open_signal_reader, open_sink

__all__ = [
    "Checkpoint",
    "Config",
    "ConfigError",
    "ContractError",
    "Deadletter",
    "Layout",
    "Position",
    "SegmentFollower",
    "SegmentWriter",
    "SignalSink",
    "StreamReader",
    "UsageError",
    "V13Error",
    "decode_row",
    "encode_row",
    "load_config",
    "open_signal_reader",
    "open_sink",
]
