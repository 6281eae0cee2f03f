"""ProgressBar: what it prints, when, and when it keeps quiet."""

from __future__ import annotations

import io

import pytest

from sutro_sql.progress import ProgressBar


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


#: rich hides the cursor while it redraws, and shows it again when the bar ends.
SHOW_CURSOR = "\x1b[?25h"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_progress_env(monkeypatch):
    monkeypatch.delenv("SUTRO_SQL_PROGRESS", raising=False)


def test_line_shows_rows_percent_rate_eta_and_tokens():
    clock = FakeClock()
    out = io.StringIO()
    bar = ProgressBar(1000, "triage", stream=out, enabled=True, clock=clock)
    bar.update(0)
    clock.now += 10
    bar.update(250, input_tokens=5000, output_tokens=250)
    line = bar.render()
    assert line.startswith("triage:")
    assert "250/1,000 rows (25%)" in line
    assert "25.0 rows/s" in line
    assert "ETA 0:30" in line  # 750 rows left at 25 rows/s
    assert "tokens in 5,000 out 250" in line


def test_no_rate_or_eta_until_a_row_is_done():
    clock = FakeClock()
    bar = ProgressBar(10, stream=io.StringIO(), enabled=True, clock=clock)
    bar.update(0)
    clock.now += 3
    bar.update(0)
    assert "rows/s" not in bar.render() and "ETA" not in bar.render()
    bar.update(3)
    assert "1.0 rows/s" in bar.render() and "ETA 0:07" in bar.render()


def test_plain_mode_prints_at_most_every_few_seconds_plus_a_final_line():
    clock = FakeClock()
    out = io.StringIO()
    bar = ProgressBar(100, "job", stream=out, enabled=True, clock=clock)
    bar.update(0)
    for done in range(1, 50):
        clock.now += 0.05
        bar.update(done)
    assert len(out.getvalue().splitlines()) == 1  # 2.45 s passed: only the first line
    clock.now += 5
    bar.update(60)
    bar.update(100)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "60/100 rows (60%)" in lines[1]
    assert "100/100 rows (100%)" in lines[2]
    assert "\r" not in out.getvalue()


def test_terminal_mode_redraws_in_place_at_most_ten_times_a_second():
    clock = FakeClock()
    out = FakeTTY()
    bar = ProgressBar(10_000, "job", stream=out, clock=clock)  # enabled because it is a TTY
    for done in range(0, 10_000, 10):  # 1000 updates over 1 second
        bar.update(done)
        clock.now += 0.001
    draws = out.getvalue().count("\r")
    assert 5 <= draws <= 11
    bar.close()
    text = out.getvalue()
    assert text.removesuffix(SHOW_CURSOR).endswith("\n") and text.count("\n") == 1  # one line, ended once
    assert "━" in text and "9,990/10,000 rows" in text  # rich's drawn bar, then the status


def test_quiet_when_not_a_terminal_and_not_asked():
    out = io.StringIO()
    with ProgressBar(10, "job", stream=out) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_env_1_turns_it_on_for_a_log_stream(monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_PROGRESS", "1")
    out = io.StringIO()
    with ProgressBar(10, "job", stream=out) as bar:
        bar.update(5)
    assert "5/10 rows" in out.getvalue()
    assert "10/10" not in out.getvalue()  # the final line shows the real count, not the total


def test_env_0_silences_even_a_terminal_and_an_explicit_request(monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_PROGRESS", "0")
    out = FakeTTY()
    with ProgressBar(10, "job", stream=out, enabled=True) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_explicit_false_silences_a_terminal():
    out = FakeTTY()
    with ProgressBar(10, stream=out, enabled=False) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_unknown_total_shows_rows_and_rate_without_percent_or_eta():
    clock = FakeClock()
    bar = ProgressBar(None, stream=io.StringIO(), enabled=True, clock=clock)
    bar.update(0)
    clock.now += 2
    bar.update(40)
    line = bar.render()
    assert "40 rows" in line and "20.0 rows/s" in line
    assert "%" not in line and "ETA" not in line


def test_rate_counts_only_rows_done_after_attaching():
    clock = FakeClock()
    bar = ProgressBar(1000, stream=io.StringIO(), enabled=True, clock=clock)
    bar.update(500)  # a resumed job: half was done before we looked
    clock.now += 5
    bar.update(550)
    assert bar.rate == pytest.approx(10.0)


def test_counts_never_go_backwards_and_close_is_idempotent():
    out = io.StringIO()
    bar = ProgressBar(10, stream=out, enabled=True)
    bar.update(7)
    bar.update(3)
    assert bar.done == 7
    bar.close()
    bar.close()
    assert len(out.getvalue().splitlines()) == 2
