"""Bit-bang a square wave on a pin from the loop; `/?buzzer` sets the note.

Each edge is a loop timer set on an absolute deadline (start + n half-periods), so a
late edge shows up as jitter, never as a lower pitch. There is no PWM hardware or
thread behind it: this is the user code that the single-threaded loop keeps on time
while it serves the page.
"""

import re
import time

from httap.http import HTTPError

MIN_FREQUENCY, MAX_FREQUENCY = 20.0, 2000.0
NOTE = re.compile(r"([A-G])([#b]?)([0-8])")
SEMITONES = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}  # from A


def note_frequency(note):
    """ "A4" -> 440.0, "C#5" -> 554.37: equal temperament from A4 = 440 Hz."""
    match = NOTE.fullmatch(note) if isinstance(note, str) else None
    if match is None:
        raise HTTPError(400, "bad-value", 'a note is a letter, "#" or "b", an octave: "A4", "C#5"')
    letter, accidental, octave = match.groups()
    semitones = SEMITONES[letter] + {"#": 1, "b": -1, "": 0}[accidental] + 12 * (int(octave) - 4)
    return 440.0 * 2 ** (semitones / 12)


class SquareWave:
    """Toggles one output every half-period with `server.call_at`.

    A tone's start and end go through `server.write`, as every app's writes should: they
    are audited and wake the pin's long-polls. The edges between are the one exception:
    they go straight to the backend (`server.gpio.write`), as the server's own soft PWM
    does, since an audit line per edge would be up to 4,000 lines a second.
    """

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.gpio = server.pin(name).gpio
        self.frequency = 0.0
        self.timer = None
        self.start = 0.0
        self.edge = 0

    def play(self, frequency):
        """Start a tone of `frequency` Hz, or silence with 0."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.frequency = frequency
        self.server.write(self.name, 1 if frequency else 0)  # a tone starts on a rising edge
        if frequency:
            self.start, self.edge = time.monotonic(), 0
            self._next()

    def _toggle(self):
        self.server.gpio.write(self.gpio, 1 - self.edge % 2)  # even edges rise
        self._next()

    def _next(self):
        """Set the timer of the edge after `self.edge`, on its absolute deadline."""
        half = 0.5 / self.frequency
        self.edge += 1
        behind = time.monotonic() - (self.start + self.edge * half)
        if behind > half:  # whole half-periods are past: skip them, keep the phase
            self.edge += int(behind / half)
        self.timer = self.server.call_at(self.start + self.edge * half, self._toggle)


def setup(server):
    wave = SquareWave(server, "speaker")
    state = {"note": None}

    @server.action("buzzer", methods=("GET", "POST"))
    def buzzer(request):
        if request.method == "POST":
            change = request.json()
            if (
                not isinstance(change, dict)
                or len(change) != 1
                or set(change) - {"note", "frequency"}
            ):
                raise HTTPError(
                    400, "bad-value", 'send {"note": "A4"} or {"frequency": 440}; 0 is silence'
                )
            note = change.get("note")
            frequency = note_frequency(note) if "note" in change else change["frequency"]
            if isinstance(frequency, bool) or not isinstance(frequency, (int, float)):
                raise HTTPError(400, "bad-value", "frequency is a number of Hz")
            if frequency and not MIN_FREQUENCY <= frequency <= MAX_FREQUENCY:
                raise HTTPError(
                    400,
                    "bad-value",
                    f"frequency is 0 or from {MIN_FREQUENCY:g} to {MAX_FREQUENCY:g} Hz",
                )
            state["note"] = note
            wave.play(frequency)
        return {"frequency": round(wave.frequency, 2), "note": state["note"]}
