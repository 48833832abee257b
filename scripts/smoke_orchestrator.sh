#!/usr/bin/env bash
# End-to-end smoke: the whole stack on the simulator, once per sink (seed task card, section 7).
# Usage: scripts/smoke_orchestrator.sh [CONFIG] [MINUTES]   (defaults: ./config/defaults.yaml, 30)
set -euo pipefail
CFG=${1:-./config/defaults.yaml}
MINUTES=${2:-30}
# JSONL
python -m orchestrator.run --config "$CFG" --enable harvest,signal,broker,report --sink jsonl --minutes "$MINUTES" --debug
# SQLite
python -m orchestrator.run --config "$CFG" --enable harvest,signal,broker,report --sink sqlite --minutes "$MINUTES" --debug
