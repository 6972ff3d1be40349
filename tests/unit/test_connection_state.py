"""The connection's states as plain values: `state_of` from the facts, and STATES' rows.

No socket and no server, as h11's test_state.py drives its state machine: the facts go in
as booleans and a count, the state and its row come out. The wire tests (test_limits,
test_attacks, test_tls) show the same rules over real sockets.
"""

from __future__ import annotations

import itertools

import pytest

from httap import connection
from httap.config import Timeouts
from httap.connection import (
    BEHIND,
    BODY,
    BOUNDED,
    BUSY,
    CLOSE,
    CLOSED,
    CLOSING,
    DRAIN,
    FINISH,
    HANDSHAKE,
    HEAD,
    IDLE,
    LINGER,
    NO,
    RECEIVING,
    STATES,
    STREAMING,
    TLS,
    WAITING,
    YES,
    Answer,
    state_of,
)

FACTS = (
    "closing",
    "writing",
    "scheduled",
    "pending",
    "partial",
    "buffered",
    "closed",
    "handshake",
    "shut",
    "streaming",
    "receiving",
    "behind",
)


def every_fact_set():
    """Every combination of the facts (`buffered` as 0 or 1 byte), as keyword dicts."""
    for values in itertools.product((False, True), repeat=len(FACTS)):
        facts = dict(zip(FACTS, values))
        facts["buffered"] = int(facts["buffered"])
        yield facts


# Each fact alone, and the state it makes: the table's "when" column.
ALONE = {
    "closed": CLOSED,
    "handshake": HANDSHAKE,
    "shut": LINGER,
    "closing": CLOSING,
    "receiving": RECEIVING,
    "writing": BUSY,
    "scheduled": BUSY,
    "streaming": STREAMING,
    "pending": WAITING,
    "partial": BODY,
    "buffered": HEAD,
}


def test_no_fact_is_idle():
    assert state_of(False, False, False, False, False, 0) == IDLE


@pytest.mark.parametrize(("fact", "state"), ALONE.items())
def test_each_fact_alone(fact, state):
    facts = dict.fromkeys(FACTS, False)
    facts[fact] = 1 if fact == "buffered" else True
    assert state_of(**facts) == state


def test_behind_qualifies_receiving_alone():
    """`behind` (the handler of a streamed body lags) means nothing without `receiving`:
    with it, BEHIND, which reads nothing and has no deadline (the lag is ours)."""
    assert state_of(False, False, False, False, False, 0, behind=True) == IDLE
    assert state_of(False, False, False, True, True, 1, receiving=True, behind=True) == BEHIND
    assert (STATES[BEHIND].reads, STATES[BEHIND].deadline) == (NO, None)
    assert (STATES[RECEIVING].reads, STATES[RECEIVING].deadline) == (YES, "request")


def test_the_first_fact_in_order_decides():
    """The facts rank as the table lists its states: with several true at once, the
    first one's state wins (a closed socket is CLOSED whatever else is true; a queued
    reply makes BUSY even with a reply pending behind it)."""
    order = list(ALONE)
    for facts in every_fact_set():
        true = [fact for fact in order if facts[fact]]
        expected = ALONE[true[0]] if true else IDLE
        if expected == RECEIVING and facts["behind"]:
            expected = BEHIND
        assert state_of(**facts) == expected, facts


def test_every_state_has_one_row():
    derived = {state_of(**facts) for facts in every_fact_set()}
    assert derived == set(STATES)


def test_rows_are_well_formed():
    """A deadline names a field of config.timeouts or "linger"; a state with a deadline
    says what its expiry does, one without says nothing."""
    for state, row in STATES.items():
        assert row.reads in (YES, BOUNDED, NO, DRAIN, TLS), state
        assert row.deadline in (*Timeouts._fields, "linger", None), state
        if row.deadline is None:
            assert row.on_timeout is None, state
        else:
            assert row.on_timeout == CLOSE or isinstance(row.on_timeout, Answer), state
        assert row.on_stop in (CLOSE, FINISH), state


def test_a_pending_reply_is_never_timed_out():
    """Whatever else is true, a reply pending with nothing queued is WAITING, which has
    no deadline: the reply's own timer (a long-poll's wait, a serial timeout) ends it."""
    for facts in every_fact_set():
        quiet = not any(
            facts[f] for f in ("closed", "handshake", "shut", "closing", "receiving", "writing")
        )
        if facts["pending"] and quiet and not facts["scheduled"]:
            assert STATES[state_of(**facts)].deadline is None


def test_queued_output_is_timed_by_inactivity_and_closed_silently():
    """A reply queued for a slow reader (BUSY, CLOSING) is timed by timeouts.inactivity
    from its queuing or the last progress, never by the request's timeouts; its expiry
    closes without a word (the client is not reading). While a streamed body arrives,
    what is queued (a 100 Continue) goes with the body's own deadline."""
    for facts in every_fact_set():
        early = facts["closed"] or facts["handshake"] or facts["shut"]
        if facts["writing"] and not early and (facts["closing"] or not facts["receiving"]):
            row = STATES[state_of(**facts)]
            assert (row.deadline, row.on_timeout) == ("inactivity", CLOSE)


@pytest.mark.parametrize(
    ("state", "timeout", "missing"),
    [
        (HEAD, "parse", "the request head did not arrive"),
        (BODY, "request", "the body did not arrive"),
        (RECEIVING, "request", "the body did not arrive"),
    ],
)
def test_a_request_cut_short_is_answered_408(state, timeout, missing):
    assert STATES[state].deadline == timeout
    assert STATES[state].on_timeout == Answer(408, missing)


@pytest.mark.parametrize("state", [HANDSHAKE, IDLE, LINGER])
def test_nothing_asked_closes_silently(state):
    assert STATES[state].on_timeout == CLOSE


def test_what_reads():
    """Requests are read when nothing is in flight; while a reply is pending or queued
    only up to a bound (so a reset is seen, but a client cannot pile up requests); not
    at all once the last response is queued; LINGER reads to drop."""
    reads = {state: row.reads for state, row in STATES.items()}
    assert reads == {
        CLOSED: NO,
        HANDSHAKE: TLS,
        LINGER: DRAIN,
        CLOSING: NO,
        RECEIVING: YES,
        BEHIND: NO,
        BUSY: BOUNDED,
        STREAMING: BOUNDED,
        WAITING: BOUNDED,
        BODY: YES,
        HEAD: YES,
        IDLE: YES,
    }


def test_a_stop_closes_only_what_has_nothing_in_flight():
    closes = {state for state, row in STATES.items() if row.on_stop == CLOSE}
    assert closes == {HANDSHAKE, IDLE, HEAD, BODY}


def test_the_deadlines_in_seconds_follow_the_rows():
    timeouts = Timeouts(parse=1.5, inactivity=20, request=40)
    seconds = connection._deadlines(timeouts)
    assert seconds == {
        CLOSED: None,
        HANDSHAKE: 1.5,
        LINGER: connection.LINGER_SECONDS,
        CLOSING: 20,
        RECEIVING: 40,
        BEHIND: None,
        BUSY: 20,
        STREAMING: None,
        WAITING: None,
        BODY: 40,
        HEAD: 1.5,
        IDLE: 20,
    }


def test_a_timeout_policy_is_a_row_edit(monkeypatch):
    """Give IDLE the parse timeout and a 408, and a pending reply the inactivity
    deadline: the seconds the connection arms follow, with no other change."""
    rows = dict(STATES)
    rows[IDLE] = rows[IDLE]._replace(deadline="parse", on_timeout=Answer(408, "nothing"))
    rows[WAITING] = rows[WAITING]._replace(deadline="inactivity", on_timeout=CLOSE)
    monkeypatch.setattr(connection, "STATES", rows)
    seconds = connection._deadlines.__wrapped__(Timeouts(parse=1.5, inactivity=20, request=40))
    assert (seconds[IDLE], seconds[WAITING]) == (1.5, 20)


def test_an_open_stream_is_never_timed_out_but_its_queued_bytes_are():
    """A stream with all sent so far is STREAMING, which has no deadline (the stream's
    own bound ends a reader that falls behind); bytes queued for it make it BUSY, timed
    like any queued reply."""
    for facts in every_fact_set():
        quiet = not any(facts[f] for f in ("closed", "handshake", "shut", "closing", "receiving"))
        if facts["streaming"] and quiet and not (facts["writing"] or facts["scheduled"]):
            assert state_of(**facts) == STREAMING and STATES[STREAMING].deadline is None
    assert state_of(False, True, False, False, False, 0, streaming=True) == BUSY
    assert STATES[STREAMING].on_stop == FINISH  # the server ends it, then it finishes
