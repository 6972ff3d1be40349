"""Simon Says: the LEDs show a growing sequence, the player presses it back.

Everything runs in the server's loop and never blocks: the sequence is shown by a chain
of timers, and the buttons are watched by a 5 ms periodic task that reads the inputs
(a press is a falling edge: the buttons pull the inputs to ground). The page plays
through `/?simon/press`, which is the same press as a button's.

    GET  /?simon                        {"phase", "level", "length"}
    POST /?simon/start
    POST /?simon/press {"button": 2}
"""

import random

from httap.http import HTTPError

BUTTONS = 4
LIT = 0.35  # seconds each step of the sequence is shown
GAP = 0.15  # seconds between two steps
PAUSE = 0.8  # seconds before the sequence is shown again, one step longer
FLASH = 0.15  # seconds an LED lights to acknowledge a press
POLL = 0.005  # seconds between two readings of the buttons


def setup(server):
    leds = [f"led{i}" for i in range(BUTTONS)]
    buttons = [f"button{i}" for i in range(BUTTONS)]
    game = {"phase": "ready", "sequence": [], "entered": 0, "timer": None}
    released = [1] * BUTTONS

    def light(button, seconds):
        server.write(leds[button], 1)
        server.call_later(seconds, lambda: server.write(leds[button], 0))

    def then(delay, callback):
        """The next step of the show: one timer at a time, which a new game cancels."""
        game["timer"] = server.call_later(delay, callback)

    def next_level():
        game["sequence"].append(random.randrange(BUTTONS))
        game["phase"], game["entered"] = "showing", 0
        then(PAUSE, lambda: show(0))

    def show(step):
        sequence = game["sequence"]
        if step == len(sequence):
            game["phase"] = "waiting"
            return
        light(sequence[step], LIT)
        then(LIT + GAP, lambda: show(step + 1))

    def press(button):
        """One press, from a button or the page; ignored unless the game waits for one."""
        if game["phase"] != "waiting":
            return
        light(button, FLASH)
        if button != game["sequence"][game["entered"]]:
            game["phase"] = "over"
            return
        game["entered"] += 1
        if game["entered"] == len(game["sequence"]):
            next_level()

    def poll():
        for button, name in enumerate(buttons):
            level = server.read(name)
            if released[button] and not level:
                press(button)
            released[button] = level

    def state():
        """The level is the number of rounds won: the sequence less the one being played."""
        length = len(game["sequence"])
        return {"phase": game["phase"], "level": max(length - 1, 0), "length": length}

    @server.action("simon")
    def get_state(request):
        return state()

    @server.action("simon/start", methods=("POST",))
    def start(request):
        if game["timer"] is not None:
            game["timer"].cancel()
        for led in leds:
            server.write(led, 0)
        game["sequence"] = []
        next_level()
        return state()

    @server.action("simon/press", methods=("POST",))
    def press_action(request):
        body = request.json()
        button = body.get("button") if isinstance(body, dict) else None
        if isinstance(button, bool) or not isinstance(button, int) or not 0 <= button < BUTTONS:
            raise HTTPError(400, "bad-value", f'send {{"button": 0..{BUTTONS - 1}}}')
        press(button)
        return state()

    server.every(POLL, poll)
