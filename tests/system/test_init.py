"""`httap init` and the README's configuration: what a new user copies must start as it is.

Each test runs the real command (`python -m httap`, as `httap`) and, where it serves,
a real server process on a port the OS picks."""

from __future__ import annotations

import json
import re

import pytest

from httap.init import NOTE, WEB_JSON5
from tests.helpers import ROOT
from tests.helpers.processes import fetch, httap, one_line_error, stop
from tests.helpers.readme import README


def test_init_then_serve_shows_the_console(tmp_path, spawn):
    where = tmp_path / "x"
    done = httap("init", str(where))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"wrote {where / 'web.json5'}",
        f"wrote {where / 'static' / 'index.html'}",
        f"next: cd {where} && httap serve    (then open http://localhost:8080)",
    ]
    # `cd x && httap serve`: ./web.json5 is read; the port is the test's own.
    process = spawn("serve", "--listen", "http://127.0.0.1:0", cwd=where)
    assert f"documents {where / 'static'}" in process.banner
    page = fetch(process, "/")
    assert page.status == 200
    assert b"<title>httap console</title>" in page.body
    assert b'<script type="module" src="console.js"></script>' in page.body
    for built_in in ("/console.js", "/httap.js", "/favicon.ico"):  # from the server
        reply = fetch(process, built_in)
        assert (reply.status, reply.body) == (200, (ROOT / "static" / built_in[1:]).read_bytes())
    discovery = fetch(process, "/?")
    assert discovery.status == 200
    assert discovery.json()["ID"] == "x"
    assert json.loads(fetch(process, "/?gpio").body) == {"pins": {}}
    log = stop(process)
    assert "WARNING httap.server" not in log  # the documents and their index are there


def test_init_writes_here_by_default(tmp_path):
    done = httap("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "next: httap serve    (then open http://localhost:8080)"
    assert (tmp_path / "static" / "index.html").read_text().startswith("<!doctype html>\n<!--")
    checked = httap("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    effective = json.loads(checked.stdout)
    assert effective["documents"] == str(tmp_path / "static")
    assert effective["gpio"]["backend"] == "auto"
    assert effective["gpio"]["pins"] == {}


@pytest.mark.parametrize("existing", ["web.json5", "static/index.html"])
def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path, existing):
    (tmp_path / "static").mkdir()
    (tmp_path / existing).write_text("mine\n")
    done = httap("init", str(tmp_path))
    one_line_error(done, f"httap init: {tmp_path / existing} exists; nothing was written")
    assert (tmp_path / existing).read_text() == "mine\n"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == sorted(
        ["static", existing]
    )


def test_init_refuses_a_file_where_a_directory_goes(tmp_path):
    (tmp_path / "static").write_text("not a directory\n")
    done = httap("init", str(tmp_path))
    one_line_error(done, f"{tmp_path / 'static'} exists and is not a directory")
    assert not (tmp_path / "web.json5").exists()


@pytest.mark.parametrize(
    ("name", "reason"), [("loop", "a loop of symbolic links"), ("a" * 300, "File name too long")]
)
def test_init_refuses_a_directory_the_system_cannot_resolve(tmp_path, name, reason):
    """A RuntimeError or OSError traceback before (the kind the campaign found in web.json5)."""
    (tmp_path / "loop").symlink_to("loop")
    done = httap("init", name, cwd=tmp_path)
    one_line_error(done, f"httap init: cannot use {name}: {reason}", "nothing was written")


def test_every_readme_section_that_init_names_exists():
    headings = {
        line.lstrip("#").strip().replace("`", "")
        for line in README.splitlines()
        if re.match(r"#{1,3} ", line)
    }
    named = re.findall(r'README "([^"]+)"', WEB_JSON5 + NOTE.replace("\n    ", " "))
    assert len(named) >= 8, named
    assert [name for name in named if name not in headings] == []


def readme_config_block() -> str:
    """The fenced json5 block of the README's Configuration section."""
    section = README.split("## Configuration: `web.json5`", 1)[1]
    return section.split("```json5\n", 1)[1].split("```", 1)[0]


def test_the_readme_configuration_starts_as_it_is(tmp_path, spawn):
    """Copied out with what the text under it says to put next to it: static/index.html."""
    (tmp_path / "web.json5").write_text(readme_config_block())
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "index.html").write_text("<!doctype html><title>mine</title>\n")
    checked = httap("check", "--config", str(tmp_path / "web.json5"))
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["id"] == "robot-car"
    process = spawn(
        "serve", "--config", str(tmp_path / "web.json5"), "--listen", "http://127.0.0.1:0"
    )
    assert fetch(process, "/?").json()["ID"] == "robot-car"
    assert fetch(process, "/").status == 200
    assert "WARNING httap.server" not in stop(process)
