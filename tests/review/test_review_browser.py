"""The review page in headless Chromium, driven as a person drives it: keys, clicks, undo."""

from __future__ import annotations

import csv

import pytest

from tests.review.cdpkit import Browser
from tests.review.reviewkit import data_folder, uncertain_frames

pytestmark = pytest.mark.chromium


def test_label_twenty_frames_by_keyboard_and_mouse_then_undo_one(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    paths = uncertain_frames(frames, 26, still=4)  # tile k shows frame k; the still scene is the last tile
    store, srv = serve(frames, data)
    labels = store.labels  # bird, cat, dog: keys 1, 2, 3
    with Browser() as b:
        b.goto(srv.url)
        b.wait("document.querySelectorAll('.tile').length === 27")
        assert b.js("document.querySelectorAll('.tile')[26].querySelector('.n').textContent") == "×4"
        assert b.js("document.querySelector('.tile.sel').dataset.i") == "0"
        for k in range(10):  # keyboard: 1/2/3 label the selected tile, which then moves on
            b.key(str(k % 3 + 1))
            b.wait(f"document.querySelectorAll('.tile.done').length === {k + 1}")
        b.key("ArrowRight")
        b.key("ArrowLeft")
        b.key("x")  # tile 10 discarded
        b.wait("document.querySelectorAll('.tile.done').length === 11")
        for n, k in enumerate([*range(11, 20), 26]):  # mouse: pick the tile, click its class
            b.click(f".tile[data-i='{k}']")
            b.click(f"button.cls[data-label='{labels[k % 3]}']")
            b.wait(f"document.querySelectorAll('.tile.done').length === {12 + n}")
        assert b.js("document.getElementById('progress').textContent").startswith("21 of 27 groups decided")
        b.click("#undo")  # takes back the last decision: the still scene's 4 frames
        b.wait("document.querySelectorAll('.tile.done').length === 20")
        assert b.js("document.querySelector('.tile.sel').dataset.i") == "26"
        assert b.js("document.getElementById('msg').textContent") == ""

    labelled = {k: labels[k % 3] for k in [*range(10), *range(11, 20)]}
    for k, label in labelled.items():
        assert (data / label / paths[k].name).is_file() and not paths[k].exists()
    assert sum(len(list((data / lab).iterdir())) for lab in labels) == 19
    assert (frames / ".discarded" / paths[10].name).is_file()
    assert all(p.exists() for p in paths[26:]) and all(p.exists() for p in paths[20:26])
    with open(data / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["action"] for r in rows].count("label") == 19 and [r["action"] for r in rows].count("discard") == 1
    by_source = {r["source"]: r for r in rows if r["action"] == "label"}
    assert {s: r["label"] for s, r in by_source.items()} == {paths[k].name: lab for k, lab in labelled.items()}
    r = by_source[paths[0].name]
    assert r["file"] == f"bird/{paths[0].name}" and r["top3"] == "cat 0.400; dog 0.380; bird 0.020"
    assert r["device"] == "frames" and r["time"] == "2026-11-30T20:45:01.000Z" and r["reviewed"]


def test_five_hundred_thumbnails_load_quickly(tmp_path, serve):
    """The page with 500 tiles, thumbnails already made (as `edgelite review` makes them at start)."""
    import threading

    frames = tmp_path / "frames"
    uncertain_frames(frames, 500)
    store, srv = serve(frames, data_folder(tmp_path / "data"))
    store.index.warm(500, threading.Event())
    with Browser() as b:
        b.goto(srv.url + "?per=1")  # Chromium's own first-navigation start-up is not the page's time
        b.goto(srv.url + "?per=500")
        # the page's clock: from navigation start to the last of the 500 thumbnails decoded
        ms = b.wait("(() => { const i = [...document.images]; return i.length === 500 && "
                    "i.every(x => x.complete && x.naturalWidth > 0) && performance.now(); })()", timeout=30)
        seconds = ms / 1000
    print(f"500 thumbnails loaded in {seconds:.2f} s")
    # the goal is 1 s on a laptop; this shared 2-core machine (load average 13-21) measured 2.2-3.1 s. The bound
    # catches what would make it pathological: a thumbnail re-made per request, requests served one after another
    assert seconds < 10.0


def test_the_tenth_class_has_the_key_0(tmp_path, serve):
    labels = [f"class{i:02d}" for i in range(1, 12)]  # eleven: the eleventh only by mouse
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data", labels)
    paths = uncertain_frames(frames, 2)
    _, srv = serve(frames, data)
    with Browser() as b:
        b.goto(srv.url)
        b.wait("document.querySelectorAll('.tile').length === 2")
        assert b.js("[...document.querySelectorAll('button.cls kbd')].map(k => k.textContent).join('')") == "1234567890"
        b.key("0")
        b.wait("document.querySelectorAll('.tile.done').length === 1")
        b.click("button.cls[data-label='class11']")
        b.wait("document.querySelectorAll('.tile.done').length === 2")
    assert (data / "class10" / paths[0].name).is_file() and (data / "class11" / paths[1].name).is_file()
