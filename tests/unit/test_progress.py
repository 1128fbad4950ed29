"""Progress: a bar on a terminal, a few plain log lines anywhere else (never carriage returns in a log)."""

import io
import logging
import time

from marconi.progress import LoggedProgress, progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_it_is_tqdms_bar():
    screen = Terminal()
    for _ in progress(range(50), desc="importing", unit="playlist", file=screen, mininterval=0):
        pass
    assert "\r" in screen.getvalue() and "50/50" in screen.getvalue()


def test_off_a_terminal_it_logs_a_line_every_so_often_and_at_the_end(caplog):
    pipe = io.StringIO()
    with caplog.at_level(logging.INFO, logger="marconi.progress"):
        bar = progress(total=20, desc="importing", unit="playlist", file=pipe)
        assert isinstance(bar, LoggedProgress)
        bar.close()
        bar = LoggedProgress(total=20, desc="importing", unit="playlist", every_s=0.2)
        for _ in range(20):
            bar.update(1)
            time.sleep(0.02)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert pipe.getvalue() == ""  # nothing drawn
    assert 2 <= len(lines) <= 4, lines  # about every 0.2 s of 0.4 s, and once at the end; none at 0, none twice
    assert lines[-1].startswith("importing: 20/20 playlist (100%), ") and lines[-1].endswith(" s elapsed")
    assert all("\r" not in line for line in lines)


def test_disabled_it_shows_nothing(caplog):
    pipe = Terminal()
    with caplog.at_level(logging.INFO, logger="marconi.progress"):
        for _ in progress(range(5), enabled=False, file=pipe):
            pass
    assert pipe.getvalue() == "" and not caplog.records


def test_two_asks_within_one_interval_log_once_and_the_end_always_logs(caplog):
    """tqdm's update and its monitor thread may each ask for a line within the same interval: only one is logged."""
    with caplog.at_level(logging.INFO, logger="marconi.progress"):
        bar = LoggedProgress(total=100, desc="encode", unit="img", every_s=30)
        bar.n = 5
        bar.display()
        bar.n = 6
        bar.display()  # 0 s later: the monitor's refresh, say
        bar.n = 100
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == ["5/100 img", "100/100 img"], lines
