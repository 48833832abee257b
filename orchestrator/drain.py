"""When a finite source is used up: has every later stage handled all of it?

The harvest says ``exhausted`` at ``exhausted_ts_ms``, after sealing everything it wrote. A
consumer is drained when a poll that *started after* its upstream was drained found nothing new,
and everything it had read was durable after that poll (``caught_up_poll_ts_ms`` and
``caught_up_ts_ms`` in its status file); that second time is then its own drained time, which
the next consumer is held against. The report stage consumes nothing the run's result depends
on: the final report is built after the stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from v13.contracts import StatusRow, decode_row
from v13.errors import ContractError
from v13.layout import Layout

__all__ = ["DRAIN_CHAIN", "Drain", "read_status"]

DRAIN_CHAIN = ("signal", "broker")  # consumers, in pipeline order after the harvest


def read_status(layout: Layout, name: str, run_id: str) -> StatusRow | None:
    """The stage's status file if it belongs to ``run_id``."""
    try:
        status = decode_row("status", layout.health_file(name).read_bytes())
    except (OSError, ContractError):
        return None
    return status if isinstance(status, StatusRow) and status.run_id == run_id else None


@dataclass(frozen=True)
class Drain:
    """Reads the status files of one run."""

    layout: Layout
    run_id: str
    enabled: tuple[str, ...]

    def source_exhausted(self) -> bool:
        h = read_status(self.layout, "harvest", self.run_id) if "harvest" in self.enabled else None
        return h is not None and h.exhausted_ts_ms is not None

    def drained(self, without: frozenset[str] = frozenset()) -> bool:
        """True once the source is exhausted and every enabled consumer has handled all of it;
        consumers in ``without`` (degraded: they will not catch up) are passed over."""
        if "harvest" not in self.enabled:
            return False
        harvest = read_status(self.layout, "harvest", self.run_id)
        if harvest is None or harvest.exhausted_ts_ms is None:
            return False
        upstream_done = harvest.exhausted_ts_ms
        for name in DRAIN_CHAIN:
            if name not in self.enabled or name in without:
                continue
            st = read_status(self.layout, name, self.run_id)
            if st is None or st.caught_up_poll_ts_ms is None or st.caught_up_ts_ms is None:
                return False
            if st.caught_up_poll_ts_ms <= upstream_done:
                return False
            upstream_done = st.caught_up_ts_ms
        return True
