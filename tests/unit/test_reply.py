"""Pending with plain values: bound to a `deliver` callback, never to a connection.

The receiver here is a list that records what `deliver` was given; the wire tests
(test_actions, test_attacks, test_auth) show the same through real connections.
"""

from __future__ import annotations

from httap import Pending, Response
from httap.reply import Stream


def receiver():
    got = []
    return got, got.append


def test_resolved_after_binding_delivers_once():
    got, deliver = receiver()
    pending = Pending()
    pending.bind(deliver)
    assert got == []
    reply = Response(200)
    pending.resolve(reply)
    pending.resolve(Response(500))  # a second resolve is ignored
    assert got == [reply]


def test_resolved_before_binding_delivers_at_the_bind():
    got, deliver = receiver()
    pending = Pending()
    pending.convert = lambda value: Response(value)
    pending.resolve(204)
    assert not pending.taken  # resolved but unbound: it may still be returned
    pending.bind(deliver)
    assert [r.status for r in got] == [204]


def test_a_bound_or_cancelled_pending_is_taken():
    bound, cancelled, fresh = Pending(), Pending(), Pending()
    bound.bind(lambda response: None)
    cancelled.cancel()
    assert (bound.taken, cancelled.taken, fresh.taken) == (True, True, False)


def test_a_value_that_cannot_be_converted_is_a_500():
    got, deliver = receiver()
    pending = Pending()
    pending.convert = lambda value: 1 / 0
    pending.bind(deliver)
    pending.resolve("x")
    assert got[0].status == 500 and b"bad reply value" in got[0].body


def test_cancel_runs_the_callbacks_once_and_not_after_a_resolve():
    calls = []
    cancelled, resolved = Pending(), Pending()
    for pending in (cancelled, resolved):
        pending.on_cancel(lambda p=pending: calls.append(p))
    resolved.resolve(Response())
    for pending in (cancelled, resolved, cancelled):
        pending.cancel()
    assert calls == [cancelled]


def test_hand_over_delivers_the_next_reply_in_its_place():
    got, deliver = receiver()
    held, later = Pending(), Pending()
    held.bind(deliver)
    held.hand_over(later)
    reply = Response(201)
    later.resolve(reply)
    assert got == [reply]


def test_hand_over_of_a_ready_reply_delivers_at_once():
    got, deliver = receiver()
    held, ready = Pending(), Pending()
    held.bind(deliver)
    ready.resolve(Response(202))
    held.hand_over(ready)
    assert [r.status for r in got] == [202]


def test_cancelling_after_a_hand_over_cancels_the_reply_in_its_place():
    held, later = Pending(), Pending()
    calls = []
    later.on_cancel(lambda: calls.append("later"))
    held.bind(lambda response: None)
    held.hand_over(later)
    held.cancel()  # the client went away: the receiver cancels what it holds
    assert calls == ["later"]


def test_hand_over_when_nobody_waits_cancels_the_reply():
    calls = []
    held, later = Pending(), Pending()
    later.on_cancel(lambda: calls.append("later"))
    held.bind(lambda response: None)
    held.cancel()
    held.hand_over(later)
    assert calls == ["later"]


def test_hand_over_of_a_taken_reply_is_a_500():
    got, deliver = receiver()
    held, taken = Pending(), Pending()
    taken.bind(lambda response: None)
    held.bind(deliver)
    held.hand_over(taken)
    assert got[0].status == 500 and b"a reply used twice" in got[0].body


# -- Stream: a reply whose body never ends -------------------------------------------------


def stream_receiver(accept: bool = True):
    sent: list = []

    def send(part: bytes) -> bool:
        sent.append(part)
        return accept

    return sent, send


def test_a_stream_hands_its_parts_over_once_bound_then_at_once():
    stream = Stream(Response(200), 100)
    assert stream.write(b"early") is True
    sent, send = stream_receiver()
    stream.bind(send, lambda: sent.append("end"))
    assert sent == [b"early"]
    assert stream.write(b"now") is True and sent == [b"early", b"now"]


def test_a_stream_the_receiver_refuses_is_over_for_the_writer():
    stream = Stream(Response(200), 100)
    sent, send = stream_receiver(accept=False)
    stream.bind(send, lambda: None)
    assert stream.write(b"one") is False and sent == [b"one"]


def test_ended_by_the_server_the_receiver_finishes_and_the_callbacks_run_once():
    closes, ends = [], []
    stream = Stream(Response(200), 100)
    stream.on_close(lambda: closes.append("closed"))
    stream.bind(lambda part: True, lambda: ends.append("end"))
    stream.end()
    stream.end()
    stream.cancel()
    assert (closes, ends) == (["closed"], ["end"])
    assert stream.write(b"late") is False


def test_cancelled_by_the_receiver_the_callbacks_run_and_no_end_is_sent():
    closes, ends = [], []
    stream = Stream(Response(200), 100)
    stream.on_close(lambda: closes.append("closed"))
    stream.bind(lambda part: True, lambda: ends.append("end"))
    stream.cancel()
    stream.end()
    assert (closes, ends) == (["closed"], [])
