"""Balancing /invocations over workers: the busier worker closes a keep-alive connection, nobody else does."""

from __future__ import annotations

from container.balance import NOT_ACCEPTING, ConnectionBalancer, free_slot, shared_loads, should_shed


class _GunicornResponse:
    """What gunicorn's ``start_response`` is bound to: only ``force_close`` matters here."""

    def __init__(self) -> None:
        self.closed = False
        self.status = None

    def force_close(self) -> None:
        self.closed = True

    def start_response(self, status, headers, exc_info=None):
        self.status = status
        return lambda data: None


def _loads(*values: int):
    loads = shared_loads(len(values))
    for i, v in enumerate(values):
        loads[i] = v
    return loads


def _call(balancer: ConnectionBalancer, path: str = "/invocations") -> tuple[_GunicornResponse, object]:
    resp = _GunicornResponse()
    body = balancer({"PATH_INFO": path}, resp.start_response)
    return resp, body


def _app(status: str = "200 OK"):
    def app(environ, start_response):
        start_response(status, [("Content-Type", "application/x-npy")])
        return [b"answer"]
    return app


def test_a_worker_sheds_only_when_more_than_one_request_above_its_least_loaded_sibling():
    assert should_shed(_loads(3, 1), 0)
    assert not should_shed(_loads(2, 1), 0)
    assert not should_shed(_loads(3, 1), 1)
    assert should_shed(_loads(4, 5, 2), 1)


def test_siblings_that_do_not_accept_yet_and_lone_workers_never_cause_shedding():
    assert not should_shed(_loads(9, NOT_ACCEPTING), 0)
    assert not should_shed(_loads(9), 0)


def test_every_slot_starts_not_accepting_and_the_lowest_free_slot_is_handed_out():
    loads = shared_loads(4)
    assert list(loads) == [NOT_ACCEPTING] * 4
    assert free_slot(loads, [0, None, 2]) == 1
    assert free_slot(loads, [0, 1, 2, 3]) is None


def test_the_busier_worker_answers_with_connection_close_and_counts_the_request_until_its_body_is_closed():
    loads = _loads(NOT_ACCEPTING, 0)
    balancer = ConnectionBalancer(_app(), loads, slot=0)
    balancer.ready()
    loads[0] = 1  # one request already in flight here, none in the sibling: this one makes two
    resp, body = _call(balancer)
    assert resp.status == "200 OK" and resp.closed
    assert loads[0] == 2  # still in flight while the server writes the body
    assert list(body) == [b"answer"]
    body.close()
    body.close()  # a second close releases nothing more
    assert loads[0] == 1


def test_balanced_workers_keep_their_connections_open():
    loads = _loads(0, 1)
    resp, body = _call(ConnectionBalancer(_app(), loads, slot=0))
    body.close()
    assert not resp.closed and loads[0] == 0


def test_health_checks_and_errors_are_never_closed_or_counted():
    loads = _loads(5, 0)
    resp, _ = _call(ConnectionBalancer(_app(), loads, slot=0), path="/ping")
    assert not resp.closed and loads[0] == 5
    resp, body = _call(ConnectionBalancer(_app("400 BAD REQUEST"), loads, slot=0))
    body.close()
    assert not resp.closed and loads[0] == 5


def test_an_app_that_raises_releases_its_count():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    loads = _loads(0, 0)
    try:
        _call(ConnectionBalancer(broken, loads, slot=0))
    except RuntimeError:
        pass
    assert loads[0] == 0
