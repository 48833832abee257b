"""Market-data sources: the embedded simulator (default), file replay, live Binance."""
