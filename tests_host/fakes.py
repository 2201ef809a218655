"""Stand-ins the portable tests share (imported on CPython and on the MicroPython unix port):
the core's clock, and a virtual time for one task's sleeps."""

import asyncio


class Clock:
    """The core's clock (firmware/app.py Clock's interface), moved by hand through `ms`."""

    def __init__(self):
        self.ms = 0

    def now(self):
        return (2026, 11, 26, 10, 15, self.ms // 1000 % 60)

    def ticks_ms(self):
        return self.ms


class VirtualTime:
    """One task sleeps on it: a sleep moves the clock on by its length, then yields."""

    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        return a - b

    async def sleep_ms(self, ms):
        self.ms += ms
        await asyncio.sleep(0)
