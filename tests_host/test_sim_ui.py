"""The interactive simulator's screen (tools/sim/ui.py), laid out over a running simulated board:
a terminal too small for it is told the size it needs, and log lines are shown whole."""

import asyncio
from pathlib import Path

import pytest

from tools.sim import ui
from tools.sim.session import SimSession, default_cards

MICROPYTHON = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "micropython"


def _column(shown, x, below):
    """The texts put at column x under row `below`, top to bottom."""
    return [text for y, at, text, _ in sorted(shown) if at == x and y > below]


def _whole(line, rows):
    """`line` is in rows, wrapped over several perhaps (wrapping drops spaces at its breaks)."""
    return line.replace(" ", "") in "".join(rows).replace(" ", "")


async def _on_the_board(tmp_path):
    session = SimSession(tmp_path, ui.DEMO_CONFIG)
    app = ui.App(session, default_cards())
    await session.start()
    try:
        await session.wait("idle", 120000)
        # A purchase, for the host's log: one line per exchange, longer than a column.
        await session.tap(app.cards[0]["pan"])
        await session.keys("1250#")
        await session.keys("1234#")
        await session.wait("settled", 120000)
        small = app.layout(24, 80)
        assert " ".join(text for _, _, text, _ in small) == (
            "The simulator needs a terminal of at least %d columns by %d rows; this one is 80 "
            "by 24: enlarge it (q quits)" % (ui.MIN_COLS, ui.MIN_ROWS))
        assert all(x + len(text) < 80 for _, x, text, _ in small)
        narrow = " ".join(text for _, _, text, _ in app.layout(60, 40))
        assert "at least %d columns by %d rows" % (ui.MIN_COLS, ui.MIN_ROWS) in narrow
        # At the smallest size it takes, everything has its place inside the terminal.
        fits = app.layout(ui.MIN_ROWS, ui.MIN_COLS)
        assert all(y < ui.MIN_ROWS and x + len(text) < ui.MIN_COLS for y, x, text, _ in fits)
        assert any(text == "Host" for _, _, text, _ in fits)
        # Tall enough for every line: the long ones are wrapped, not cut at 32 columns.
        tall = app.layout(300, ui.MIN_COLS)
        term_top = next(y for y, x, text, _ in tall if text == "Terminal")
        terminal = _column(tall, ui.COLUMN + 2, term_top)
        long_lines = [line for line in app.term_log if len(line) > ui.COLUMN]
        assert long_lines, app.term_log
        for line in app.term_log:
            assert _whole(line, terminal), line
        host_top = next(y for y, x, text, _ in tall if text == "Host")
        host = [text for text in _column(tall, 0, host_top) if text not in ui.HELP]
        logged = [line[13:] for line in session.host.log]
        assert any(len(line) > ui.COLUMN for line in logged), logged
        for line in logged:
            assert _whole(line, host), line
    finally:
        await session.stop()


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="needs the MicroPython unix port")
def test_the_screen_on_a_running_board(tmp_path):
    asyncio.run(_on_the_board(tmp_path))


def test_minimum_size_holds_the_layout():
    assert ui.MIN_COLS >= ui.OLED_COLS + 4 + ui.COLUMN + 1
    assert all(len(line) < ui.MIN_COLS for line in ui.HELP)
