"""The session registry and the lease, with plain values: no server, no socket.

The server opens a session in the registry for each accepted connection and closes it
when the connection ends; the lease hears of every close from the registry. The wire
tests (test_manager, test_safe_replies) show the same through real connections.
"""

from __future__ import annotations

import pytest

from httap.session import Busy, Lease, Sessions


def test_ids_are_never_reused():
    sessions = Sessions()
    first = sessions.open(("10.0.0.1", 1000), 0.0)
    sessions.close(first)
    again = Sessions().open(("10.0.0.1", 1000), 1.0)  # another server in this process
    second = sessions.open(("10.0.0.1", 1000), 2.0)
    assert len({first.id, again.id, second.id}) == 3
    assert first.id < again.id < second.id


def test_the_registry_holds_the_open_ones_and_counts_them_all():
    sessions = Sessions()
    a = sessions.open(("10.0.0.1", 1), 0.0)
    b = sessions.open(("10.0.0.2", 2), 0.0)
    sessions.close(a)
    assert sessions.live == {b}
    assert sessions.opened == 2
    assert (a.closed, b.closed) == (True, False)
    assert (b.address, b.opened, b.last_active) == ("10.0.0.2", 0.0, 0.0)


def test_a_session_closes_before_the_registry_hears_of_it():
    """The app's `session.on_close` callbacks run first, then the lease's release (and
    with it the safe values)."""
    sessions = Sessions()
    order = []
    session = sessions.open(("10.0.0.1", 1), 0.0)
    session.on_close(lambda: order.append("session"))
    sessions.on_close(lambda closed: order.append(("registry", closed is session)))
    sessions.close(session)
    assert order == ["session", ("registry", True)]


def lease(mode: str):
    sessions, released = Sessions(), []
    return sessions, Lease(mode, lambda: released.append(True), sessions), released


def test_a_client_holds_the_lease_until_its_last_connection_closes():
    sessions, held, released = lease("client")
    first = sessions.open(("10.0.0.1", 1), 0.0)
    second = sessions.open(("10.0.0.1", 2), 0.0)
    other = sessions.open(("10.0.0.9", 3), 0.0)
    held.acquire(first, 1.0, "writing pin led is refused")
    with pytest.raises(Busy) as refused:
        held.acquire(other, 2.5, "writing pin led is refused")
    assert refused.value.held_for == 1.5
    sessions.close(first)
    assert (held.holder, released) == (second, [])  # the client holds it through another
    sessions.close(second)
    assert (held.holder, released) == (None, [True])
    held.acquire(other, 3.0, "writing pin led is refused")


def test_with_connection_the_lease_ends_with_the_connection():
    sessions, held, released = lease("connection")
    first = sessions.open(("10.0.0.1", 1), 0.0)
    second = sessions.open(("10.0.0.1", 2), 0.0)
    held.acquire(first, 0.0, "refused")
    with pytest.raises(Busy):
        held.check(second, 0.0, "refused")
    sessions.close(first)
    assert (held.holder, released) == (None, [True])


def test_the_holders_idle_time_is_its_latest_activity():
    sessions, held, _ = lease("client")
    first = sessions.open(("10.0.0.1", 1), 0.0)
    second = sessions.open(("10.0.0.1", 2), 0.0)
    held.acquire(first, 0.0, "refused")
    first.last_active, second.last_active = 4.0, 7.0
    assert held.holder_idle(10.0) == 3.0


def test_the_lease_tells_each_change_of_its_holder_and_only_those():
    """on_change hears the holder taken, passed to another link of the same client, and
    released (before the safe values); a close of another link changes nothing."""
    sessions, held, released = lease("client")
    heard = []
    held.on_change(lambda holder: heard.append((holder, list(released))))
    first = sessions.open(("10.0.0.1", 1), 0.0)
    second = sessions.open(("10.0.0.1", 2), 0.0)
    third = sessions.open(("10.0.0.1", 3), 0.0)
    held.acquire(first, 0.0, "refused")
    held.acquire(second, 0.0, "refused")  # the same client: still first's
    assert heard == [(first, [])]
    sessions.close(second)  # not the holder's link
    assert heard == [(first, [])] and held.holder is first
    sessions.close(first)
    assert heard == [(first, []), (third, [])]
    sessions.close(third)
    assert heard == [(first, []), (third, []), (None, [])]  # told before the safe values
    assert released == [True]


def test_with_off_the_lease_never_changes():
    sessions, held, _ = lease("off")
    heard = []
    held.on_change(heard.append)
    session = sessions.open(("10.0.0.1", 1), 0.0)
    held.acquire(session, 0.0, "refused")
    sessions.close(session)
    assert (held.holder, heard) == (None, [])
