"""Blink an LED from a periodic task; `/?blink` turns it on and off and sets the rate.

The task lives in the server's loop (`server.every`), not in the page: the LED keeps
blinking with no browser attached, and a click only changes the task.
"""

from httap.http import HTTPError

MIN_RATE, MAX_RATE = 0.1, 50.0  # blinks per second (one blink: on, then off)


def setup(server):
    state = {"on": True, "rate": 1.0}
    task = None

    def toggle():
        server.write("led", 1 - server.read("led"))

    def restart():
        """Re-create the task: `every` keeps absolute deadlines, so a new rate needs a new one."""
        nonlocal task
        if task is not None:
            task.cancel()
            task = None
        if state["on"]:
            task = server.every(0.5 / state["rate"], toggle)
        else:
            server.write("led", 0)

    @server.action("blink", methods=("GET", "POST"))
    def blink(request):
        if request.method == "POST":
            change = request.json()
            if not isinstance(change, dict) or set(change) - {"on", "rate"}:
                raise HTTPError(400, "bad-value", 'send {"on": true, "rate": 2} (both optional)')
            on = change.get("on", state["on"])
            rate = change.get("rate", state["rate"])
            if not isinstance(on, bool):
                raise HTTPError(400, "bad-value", "on is true or false")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                raise HTTPError(400, "bad-value", "rate is a number of blinks per second")
            if not MIN_RATE <= rate <= MAX_RATE:
                raise HTTPError(400, "bad-value", f"rate is from {MIN_RATE} to {MAX_RATE:g}")
            state.update(on=on, rate=rate)
            restart()
        return {**state, "led": server.read("led")}

    restart()
