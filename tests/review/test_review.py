"""`edgelite review` over HTTP: a real server on 127.0.0.1, real frame files, real moves and CSV rows."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgelite.review.errors import ReviewError
from edgelite.review.server import ReviewServer
from tests.review.reviewkit import data_folder, get, post, uncertain_frames

REPO = Path(__file__).resolve().parents[2]


def rows(data: Path) -> list[dict]:
    with open(data / "review.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def groups(srv, **q) -> dict:
    import json

    qs = "&".join(f"{k}={v}" for k, v in q.items())
    code, body = get(srv.url + "api/groups?" + qs)
    assert code == 200, body
    return json.loads(body)


def test_most_uncertain_first_and_a_still_scene_is_one_group(tmp_path, serve):
    uncertain_frames(tmp_path / "frames", 6, still=5)
    _, srv = serve(tmp_path / "frames", data_folder(tmp_path / "data"))
    page = groups(srv, per=50)
    assert page["frames"] == 11 and page["groups"] == 7  # 6 scenes + one group of 5 near-copies
    assert [it["n"] for it in page["items"]] == [1, 1, 1, 1, 1, 1, 5]
    assert page["items"][0]["name"].startswith("20261130-204501-000_cat-0.40_dog-0.38")
    margins = [it["top"][0][1] - it["top"][1][1] for it in page["items"]]
    assert margins == sorted(margins)
    assert page["labels"] == ["bird", "cat", "dog"]


def test_one_decision_labels_the_group_with_provenance_and_undo_puts_it_back(tmp_path, serve):
    frames, data = tmp_path / "cam1", data_folder(tmp_path / "data")
    uncertain_frames(frames, 2, still=5)
    _, srv = serve(frames, data)
    still = next(it for it in groups(srv)["items"] if it["n"] == 5)
    code, reply = post(srv.url + "api/decide", {"group": still["group"], "action": "label", "label": "dog"})
    assert code == 200 and reply["frames"] == 5
    assert len(list((data / "dog").glob("*.jpg"))) == 5 and len(list(frames.glob("*.jpg"))) == 2
    r = rows(data)
    assert len(r) == 5 and {x["label"] for x in r} == {"dog"} and {x["action"] for x in r} == {"label"}
    assert r[0]["device"] == "cam1" and r[0]["model"] == "recorded" and r[0]["time"].startswith("2026-11-30T20:45")
    assert r[0]["top3"].count(";") == 2 and all((data / x["file"]).is_file() for x in r)
    code, reply = post(srv.url + "api/undo", {})
    assert code == 200 and reply["undone"]["group"] == still["group"]
    assert not list((data / "dog").glob("*.jpg")) and len(list(frames.glob("*.jpg"))) == 7 and rows(data) == []


def test_discarded_frames_are_kept_until_confirmed(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    paths = uncertain_frames(frames, 3)
    _, srv = serve(frames, data)
    first = groups(srv)["items"][0]
    assert post(srv.url + "api/decide", {"group": first["group"], "action": "discard"})[0] == 200
    kept = frames / ".discarded" / paths[0].name
    assert kept.is_file() and not paths[0].exists()
    assert groups(srv)["discarded_waiting"] == 1 and rows(data)[0]["action"] == "discard"
    code, reply = post(srv.url + "api/confirm", {})
    assert code == 200 and reply["deleted"] == 1 and not kept.exists() and len(list(frames.glob("*.jpg"))) == 2


def test_a_label_outside_the_classes_moves_nothing(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    paths = uncertain_frames(frames, 2)
    _, srv = serve(frames, data)
    g = groups(srv)["items"][0]["group"]
    for label in ("../evil", "../../evil", "/tmp/evil", "cat/../../evil", "", "x" * 300):
        code, reply = post(srv.url + "api/decide", {"group": g, "action": "label", "label": label})
        assert code == 400 and "is not a class" in reply["error"], label
    for bad in ({"group": "0", "action": "label", "label": "cat"}, {"group": 99, "action": "skip"},
                {"group": g, "action": "rm -rf"}, [1, 2]):
        assert post(srv.url + "api/decide", bad)[0] == 400
    assert all(p.exists() for p in paths) and not (tmp_path / "evil").exists() and not (data / "review.csv").exists()


@pytest.mark.parametrize("labels", ["../x", "cat,../../x", ".hidden", "a/b"])
def test_cli_refuses_a_label_that_is_not_a_folder_name(tmp_path, labels):
    uncertain_frames(tmp_path / "frames", 1)
    p = subprocess.run([sys.executable, "-m", "edgelite", "review", str(tmp_path / "frames"), "--data",
                        str(tmp_path / "data"), "--labels", labels, "--http", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "must be a plain folder name" in p.stderr and not (tmp_path / "x").exists()


def test_requests_for_paths_outside_the_frames_folder_get_nothing(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 2)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"SECRET" * 100)
    (frames / "link.jpg").symlink_to(secret)  # a link in the folder must not reach out of it either
    _, srv = serve(frames, data)
    assert groups(srv)["frames"] == 2  # the link is left out
    base = srv.url.rstrip("/")
    for path in ("/thumb/../../secret.jpg", "/thumb/..%2f..%2fsecret.jpg", "/thumb/%2e%2e/secret.jpg",
                 "/thumb/-1", "/thumb/2", "/thumb/99999999999999999999", "/../secret.jpg", "/secret.jpg",
                 "/thumb/0/../../../secret.jpg", "//etc/passwd", "/frames/link.jpg"):
        code, body = get(base + path)
        assert code in (400, 404) and b"SECRET" not in body and b"root:" not in body, path
    assert get(base + "/thumb/0")[0] == 200


def test_a_file_that_is_not_an_image_can_only_be_discarded(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 2)
    (frames / "20261130-204600-000_cat-0.31_dog-0.30_bird-0.02.jpg").write_bytes(b"<html>not a jpeg</html>")
    (frames / "notes.txt").write_text("not a frame")
    _, srv = serve(frames, data)
    page = groups(srv)
    assert page["frames"] == 3
    bad = page["items"][0]
    assert bad["unreadable"] and get(srv.url + f"thumb/{bad['frame']}")[0] == 415
    code, reply = post(srv.url + "api/decide", {"group": bad["group"], "action": "label", "label": "cat"})
    assert code == 400 and "discard it" in reply["error"] and not list((data / "cat").iterdir())
    assert post(srv.url + "api/decide", {"group": bad["group"], "action": "discard"})[0] == 200


def test_a_token_when_bound_beyond_this_machine(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 1)
    store, _ = serve(frames, data)
    with pytest.raises(ReviewError, match="set --token"):
        ReviewServer(store, "0.0.0.0:0")
    _, srv = serve(frames, data, address="0.0.0.0:0", token="s3cret")
    plain = srv.url.split("?")[0]
    assert get(plain + "api/groups")[0] == 401 and get(plain + "thumb/0")[0] == 401
    assert post(plain + "api/undo", {})[0] == 401
    assert get(plain + "api/groups", {"Authorization": "Bearer s3cret"})[0] == 200
    assert get(srv.url)[0] == 200 and "?token=s3cret" in srv.url


def test_a_post_from_another_site_is_refused(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 1)
    _, srv = serve(frames, data)
    # a form on another web site can send only form or text bodies without a preflight; a rebound DNS name
    # reaches 127.0.0.1 with its own Host header
    form = b"group=0&action=label&label=cat"
    assert post(srv.url + "api/decide", form, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert post(srv.url + "api/decide", form, {"Content-Type": "text/plain"})[0] == 415
    code, _ = post(srv.url + "api/decide", {"group": 0, "action": "label", "label": "cat"},
                   {"Host": f"evil.example:{srv.port}"})
    assert code == 403 and len(list(frames.glob("*.jpg"))) == 1


def test_fifty_thousand_frames_are_paged(tmp_path, serve):
    """A folder of 50,000 files: indexed once, served 200 groups a page; the first page is quick."""
    frames = tmp_path / "frames"
    jpegs = [p.read_bytes() for p in uncertain_frames(tmp_path / "some", 250)]
    frames.mkdir()
    for i in range(50_000):  # each a distinct name (and time) with its scores; 250 scenes in turn
        (frames / f"20261201-{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}-{i % 1000:03d}"
                  f"_cat-0.{40 + i % 50}_dog-0.{10 + i % 30:02d}_bird-0.01.jpg").write_bytes(jpegs[i % 250])
    t0 = time.perf_counter()
    _, srv = serve(frames, data_folder(tmp_path / "data"))
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = groups(srv, per=200)
    t_page = time.perf_counter() - t0
    assert page["frames"] == 50_000 and len(page["items"]) == 200 and page["pages"] == -(-page["groups"] // 200)
    last = groups(srv, per=200, page=page["pages"] - 1)
    assert 0 < len(last["items"]) <= 200 and last["page"] == page["pages"] - 1
    print(f"50,000 frames: indexed in {t_index:.1f} s, first page of 200 groups in {t_page * 1000:.0f} ms")
    assert t_page < 1.0
    assert get(srv.url + "api/groups?per=501")[0] == 400 and get(srv.url + "api/groups?per=x")[0] == 400


def test_a_device_name_a_spreadsheet_would_run_is_quoted_in_the_csv(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames / "=HYPERLINK(evil)", 1)  # a device folder named like a formula
    _, srv = serve(frames, data)
    assert post(srv.url + "api/decide", {"group": 0, "action": "label", "label": "cat"})[0] == 200
    r = rows(data)[0]
    assert r["device"] == "'=HYPERLINK(evil)" and r["file"].startswith("cat/=HYPERLINK(evil)_")
    assert (data / r["file"]).is_file()


def test_undo_after_a_labelled_frame_was_moved_by_hand_says_so(tmp_path, serve):
    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 1, still=3)
    _, srv = serve(frames, data)
    assert post(srv.url + "api/decide", {"group": 1, "action": "label", "label": "cat"})[0] == 200
    gone = sorted((data / "cat").iterdir())[0]
    gone.unlink()
    code, reply = post(srv.url + "api/undo", {})
    assert code == 400 and reply["error"].startswith("cannot undo") and "by hand" in reply["error"]
    assert post(srv.url + "api/decide", {"group": True, "action": "skip"})[0] == 400  # JSON true is no group


def test_the_command_serves_until_stopped_then_says_what_it_did(tmp_path):
    import signal

    frames, data = tmp_path / "frames", data_folder(tmp_path / "data")
    uncertain_frames(frames, 3)
    p = subprocess.Popen([sys.executable, "-m", "edgelite", "review", str(frames), "--data", str(data), "--http",
                          "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        url = p.stdout.readline().split(" at ", 1)[1].split()[0]
        assert post(url + "api/decide", {"group": 0, "action": "label", "label": "dog"})[0] == 200
        p.send_signal(signal.SIGTERM)  # what systemd or a terminal's Ctrl-C (SIGINT) does
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert f"labelled 1 frames into {data}" in out and len(list((data / "dog").iterdir())) == 1
