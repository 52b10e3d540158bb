"""Forecasters behind one interface (baselines now, Kronos through the same door) and forecast summaries."""
