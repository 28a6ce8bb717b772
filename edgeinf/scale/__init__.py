"""Scale-out on Ray Serve: package graphs and language-model sessions as autoscaled replicas
behind a ZeroMQ front that speaks edgeinf's protocol unchanged (``edgeinf serve --ray``).

``policy`` is pure arithmetic (autoscaling target, replicas needed, capacity misses) and
imports no Ray; ``cluster``, ``front``, ``replicas`` and ``router`` need ``edgeinf[ray]``.
See docs/scale.md.
"""
