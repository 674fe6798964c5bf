"""Issue #11 finding 5: `deploy --uninstall` could delete a home directory (`--dir ~`): its only guard was
that agent.pyz and releases/ existed. Now a marker is written on first deploy, a non-empty folder without
it is refused, and uninstall removes only the agent's own entries."""

from __future__ import annotations

from edgelite.deploy.agent.__main__ import handle
from edgelite.deploy.agent.layout import Layout
from edgelite.remote.layout import MARKER


def _home(tmp_path):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a photo")
    (home / ".bashrc").write_text("export X=1\n")
    return home


def test_uninstall_never_deletes_a_folder_it_did_not_make(tmp_path):
    home = _home(tmp_path)
    (home / "agent.pyz").write_bytes(b"PK")  # what made the old guard pass
    (home / "releases").mkdir()
    reply = handle({"command": "uninstall", "dir": str(home)})
    assert not reply["ok"] and reply["exit_code"] == 2 and "--dir" in reply["error"]
    assert (home / "photos" / "cat.jpg").exists() and (home / ".bashrc").exists()


def test_deploy_refuses_a_non_empty_folder_without_the_marker(tmp_path):
    home = _home(tmp_path)
    reply = handle({"command": "configure", "dir": str(home), "mode": "none", "user": "pi"})
    assert not reply["ok"] and reply["exit_code"] == 2 and MARKER in reply["error"]
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", "photos"]


def test_uninstall_removes_only_the_agents_own_entries(tmp_path):
    d = tmp_path / "edgelite"
    d.mkdir()
    (d / "agent.pyz").write_bytes(b"PK")  # pushed by the workstation before the first call
    assert handle({"command": "configure", "dir": str(d), "mode": "none", "user": "pi"})["ok"]
    assert (d / MARKER).is_file()
    (d / "notes.txt").write_text("mine")  # the user's file, added later
    reply = handle({"command": "uninstall", "dir": str(d)})
    assert reply["ok"] and reply["kept"] == ["notes.txt"], reply
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    # a folder holding only what the agent made is removed whole
    e = tmp_path / "clean"
    e.mkdir()
    (e / "agent.pyz").write_bytes(b"PK")
    assert handle({"command": "configure", "dir": str(e), "mode": "none", "user": "pi"})["ok"]
    assert handle({"command": "uninstall", "dir": str(e)})["ok"] and not e.exists()


def test_a_deploy_folder_from_before_the_marker_is_adopted(tmp_path):
    d = tmp_path / "old"
    lay = Layout(d)
    for p in (lay.releases, lay.bundles, lay.venvs):
        p.mkdir(parents=True)
    lay.agent.write_bytes(b"PK")
    assert handle({"command": "configure", "dir": str(d), "mode": "none", "user": "pi"})["ok"]
    assert lay.marker.is_file()
