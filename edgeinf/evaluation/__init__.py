"""Evaluation harness for the adaptive controller (not part of the runtime).

Starts real workers and link emulators, streams requests live through an
:class:`edgeinf.AdaptiveRuntime`, replays the same stream exactly for the baselines
(always-local, always-offload, best static plan, per-request oracle) and reports. Used by
``edgeinf bench controller``, ``edgeinf demo`` and the tests; nothing on a request path
imports it (the import test keeps it so).
"""
