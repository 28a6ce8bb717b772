"""A real ``edgeinf daemon`` subprocess for tests, the apps' smoke tests and benchmarks.

Both output streams are drained by threads (the daemon logs a JSON line per request: an
undrained pipe would block it after 64 kB), every wait is bounded.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Deque, List, Optional


class DaemonProc:
    """``edgeinf daemon ARGS`` on a random loopback port; ``.url`` once it serves."""

    def __init__(self, *args: str, env: Optional[dict] = None, ready_timeout: float = 120.0):
        self.args = ["daemon", "--http", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeinf", *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.out: List[str] = []
        self.err: Deque[str] = collections.deque(maxlen=5000)
        self._ready = threading.Event()
        self.url: Optional[str] = None
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        if not self._ready.wait(ready_timeout) or self.url is None:
            rc = self.proc.poll()
            self.kill()
            raise RuntimeError(f"edgeinf {' '.join(self.args)} not serving in {ready_timeout} s (rc {rc}): "
                               + "".join(list(self.err)[-20:])[-3000:])
        self.host = self.url.split("://", 1)[1]  # what tritonclient wants: no scheme

    def _pump_out(self):
        for line in self.proc.stdout:
            self.out.append(line)
            if self.url is None and " on http://" in line:
                self.url = line.split(" on ", 1)[1].split()[0]
                self._ready.set()
        self._ready.set()  # exited: __init__ reports it

    def _pump_err(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def logs(self) -> List[dict]:
        """The JSON log lines so far."""
        out = []
        for line in list(self.err):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def wait_for(cond, timeout: float = 10.0, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())
