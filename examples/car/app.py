"""Drive a two-motor car: `/?car/drive {"left": -1..1, "right": -1..1}` and `/?car/stop`.

Three things stop the car, from the network side in, so that it never runs away:
- the server's lease lets one client drive at a time (a second one gets 503);
- when the driver's link drops, the server sets every pin to its `safe` value (0);
  a one-shot client (curl) drops its link once it has the reply, so its drive stops
  at once: the page keeps its connection open, and so its drive goes on;
- a dead man's switch here: no drive command for 500 ms and the motors stop, so a
  page that freezes, or a link that stalls without closing, stops the car too.
The page repeats its command every 200 ms while a button is held.
"""

from httap.http import HTTPError

DEAD_MAN = 0.5  # seconds without a drive command before the motors stop
SIDES = ("left", "right")


def setup(server):
    dead_man = None

    def motor(side, speed):
        """Direction pins first, then the speed: the PWM duty is |speed|."""
        server.write(f"{side}_forward", 1 if speed > 0 else 0)
        server.write(f"{side}_back", 1 if speed < 0 else 0)
        server.pwm(f"{side}_speed", duty=abs(speed))

    def speed(side):
        """Read back from the pins, so that it shows the safe values too once applied."""
        direction = server.read(f"{side}_forward") - server.read(f"{side}_back")
        state = server.state(f"{side}_speed")
        duty = state["pwm"]["duty"] if state["pwm"]["running"] else state["value"]
        return direction * duty

    def disarm():
        nonlocal dead_man
        if dead_man is not None:
            dead_man.cancel()
            dead_man = None

    def stop():
        disarm()
        for side in SIDES:
            motor(side, 0)

    @server.action("car", methods=("GET",))
    def car(request):
        return {side: speed(side) for side in SIDES}

    @server.action("car/drive", methods=("POST",))
    def drive(request):
        nonlocal dead_man
        command = request.json()
        if not isinstance(command, dict) or set(command) - set(SIDES):
            raise HTTPError(400, "bad-value", 'send {"left": -1..1, "right": -1..1}')
        speeds = {side: command.get(side, 0) for side in SIDES}
        for value in speeds.values():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HTTPError(400, "bad-value", "a speed is a number from -1 to 1")
            if not -1 <= value <= 1:
                raise HTTPError(400, "bad-value", "a speed is from -1 (back) to 1 (forward)")
        disarm()
        for side, value in speeds.items():
            motor(side, value)
        dead_man = server.call_later(DEAD_MAN, stop)
        return car(request)

    @server.action("car/stop", methods=("POST",))
    def stop_action(request):
        stop()
        return car(request)
