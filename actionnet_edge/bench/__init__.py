"""Measurement: MAC/parameter profiling, latency per runtime, reports."""
