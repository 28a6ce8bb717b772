"""Session-affine routing for language-model sessions (a Ray Serve request router).

Ray Serve runs the router in the caller's process (the front). A request carrying
``affinity=<replica id>`` (the replica that opened its session) goes to that replica while
it is among the live candidates; any other request (``open``, or a session whose replica
died) goes to the least loaded candidate, where a step for an unknown session is refused
SESSION and the edge reopens from its token history.
"""
from __future__ import annotations

from typing import List, Optional

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica


class SessionRouter(RequestRouter):
    async def choose_replicas(self, candidate_replicas: List[RunningReplica],
                              pending_request: Optional[PendingRequest] = None) -> List[List[RunningReplica]]:
        want = pending_request.kwargs.get("affinity") if pending_request is not None else None
        if want:
            for r in candidate_replicas:
                if r.replica_id.unique_id == want:
                    return [[r]]
        return [list(candidate_replicas)]  # one rank: the base probes their queues, least loaded wins
