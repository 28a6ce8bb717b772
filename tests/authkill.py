"""Shared by the worker and broker security tests: kill a server's ZAP thread mid-serve."""
import threading
import time

from edgeinf.errors import AuthError


def serve_until_the_authenticator_dies(server, security, close) -> None:
    """Run ``server.serve()`` in a thread, end its authenticator as a crash would, and
    assert that serve() raised AuthError (the process would exit 1 for its supervisor)."""
    failure = []

    def serve():
        try:
            server.serve()
        except AuthError as e:
            failure.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        assert t.is_alive() and security.alive()
        security.auth.pipe.send(b"TERMINATE")  # the thread ends as if it had crashed
        t.join(5)
        assert not t.is_alive() and failure and "authenticator" in str(failure[0])
    finally:
        server.stop()
        t.join(5)
        close()  # also when the thread is gone (no hang on its dead pipe)
