"""Serving benchmark: load a running Guidepost over HTTP and report latency, throughput, overload and RSS."""
