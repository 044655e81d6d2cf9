"""Live mode: spans from workers in other processes, received over OTLP and routed to their test.

Part of the job layer's side of the package: it imports ``_core`` and ``_jobs``, never an adapter.
"""
