"""free_port: never the same port twice in one process (a config's listeners must not collide)."""

from ser_serve.engines import process


class ProbeSocket:
    """A socket whose kernel-chosen port comes from a script, as the kernel may hand a just-closed port out again."""

    offered = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def bind(self, address):
        self.port = ProbeSocket.offered.pop(0)

    def getsockname(self):
        return ("127.0.0.1", self.port)


def test_a_port_offered_again_by_the_kernel_is_not_handed_out_twice(monkeypatch):
    monkeypatch.setattr(process, "_handed_out", set())
    monkeypatch.setattr(process.socket, "socket", ProbeSocket)
    ProbeSocket.offered = [42171, 42171, 42171, 38183]
    assert [process.free_port(), process.free_port()] == [42171, 38183]
    assert ProbeSocket.offered == []


def test_free_ports_from_the_real_kernel_are_distinct_and_bindable():
    import socket

    ports = [process.free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
