"""The loop's reporting thread (edgelite.device.reporter): every item handled once, in order, off the
caller's thread; the queue bounded; a handler's exception raised to the caller; the idle hook run
when the queue runs dry."""

from __future__ import annotations

import threading
import time

import pytest

from edgelite.device.reporter import Reporter


def test_items_are_handled_in_order_on_another_thread_and_close_drains_them():
    seen, threads = [], set()

    def handle(i):
        seen.append(i)
        threads.add(threading.current_thread().name)

    rep = Reporter(handle)
    for i in range(500):
        rep.submit(i)
    rep.close()
    assert seen == list(range(500))
    assert threads == {"edgelite-report"}


def test_a_slow_handler_holds_the_submitter_back_at_max_pending():
    gate = threading.Event()
    rep = Reporter(lambda i: gate.wait(5), max_pending=2)
    t0 = time.monotonic()
    done = threading.Event()

    def submit_five():
        for i in range(5):
            rep.submit(i)
        done.set()

    threading.Thread(target=submit_five, daemon=True).start()
    assert not done.wait(0.3)  # one in the handler, two queued: the fourth submit waits
    assert len(rep._q) <= 2
    gate.set()
    assert done.wait(5) and time.monotonic() - t0 < 5
    rep.close()


def test_a_handler_error_reaches_the_next_submit_and_close():
    def handle(i):
        if i == 3:
            raise ValueError("bad output")

    rep = Reporter(handle)
    with pytest.raises(ValueError, match="bad output"):
        for i in range(1000):
            rep.submit(i)
            time.sleep(0.001)
    with pytest.raises(ValueError, match="bad output"):
        rep.close()


def test_idle_runs_when_the_queue_runs_dry_and_inline_mode_runs_on_the_caller():
    idle = threading.Event()
    rep = Reporter(lambda i: None, idle=idle.set)
    rep.submit(1)
    assert idle.wait(2)
    rep.close()

    where = []
    inline = Reporter(lambda i: where.append(threading.current_thread()), threaded=False)
    inline.submit(1)
    inline.close()
    assert where == [threading.current_thread()]


def test_an_item_submitted_while_the_idle_flush_runs_is_reported_before_close_returns():
    """The last frame of a file: submitted while the thread flushed the outputs, then close(). It was lost
    when the thread, back from the flush, saw `closing` and left without looking at the queue again."""
    seen, in_idle, go = [], threading.Event(), threading.Event()

    def idle():
        in_idle.set()
        go.wait(5)

    rep = Reporter(seen.append, idle=idle)
    rep.submit(1)
    assert in_idle.wait(2)  # the queue ran dry: the thread is in the flush
    rep.submit(2)
    closer = threading.Thread(target=rep.close, daemon=True)
    closer.start()
    deadline = time.monotonic() + 2
    while not rep._closing and time.monotonic() < deadline:
        time.sleep(0.001)
    go.set()
    closer.join(5)
    assert not closer.is_alive()
    assert seen == [1, 2]


def test_a_close_that_times_out_says_how_many_results_were_not_written(caplog):
    """An output that never returns (a pipe nobody reads): close() gives up after its timeout, and says so."""
    gate = threading.Event()
    rep = Reporter(lambda i: gate.wait(5))
    for i in range(3):
        rep.submit(i)
    with caplog.at_level("WARNING", logger="edgelite.device"):
        rep.close(timeout=0.3)
    gate.set()
    assert "the outputs were still busy after 0.3 s: 2 queued results are not written" in caplog.text
