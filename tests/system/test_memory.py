"""What a serving process holds: nothing loaded that only another command, a help text
or an unused table needs (docs/performance.md, "The loop's timing and memory").

The figures themselves (VmRSS) come from `make bench`; these tests pin the causes, in
a real `httap serve` process, asked through an app's action.
"""

from __future__ import annotations

import pytest

from tests.helpers.processes import fetch

REPORTER = """
import mimetypes
import sys

def setup(server):
    @server.action("loaded")
    def loaded(request):
        return {"modules": sorted(sys.modules), "mimetypes_read": mimetypes.inited}
"""


@pytest.mark.parametrize("with_config", [False, True])
def test_a_serving_process_loads_only_what_serving_needs(spawn, tmp_path, with_config):
    """shutil (which brings zlib, bz2 and lzma) only served argparse's help width;
    getpass and httap.init serve other commands; mimetypes' own tables (read from
    /etc/mime.types) are not the server's, which uses Python's built-in one. What only
    a configured or used feature needs waits for it: serial ports (serialport.py,
    termios, pyserial), an archive installed (tarfile, zipfile, gzip, hashlib and its
    libcrypto; tempfile, which brings shutil), an upload (tempfile; python-multipart),
    MQTT (paho-mqtt), TLS (ssl); the files' and the app's rooms and the documents'
    versions (manager/files.py, site.py, unlink.py: `uploads.dir`, or a version a
    previous run switched to), the kept pin settings (persist.py: a `persist: true`
    pin). json5 is imported only when there is a file, and dropped once it is read."""
    app = tmp_path / "app.py"
    app.write_text(REPORTER)
    args = ["serve", "--listen", "http://127.0.0.1:0", "--gpio", "sim", "--app", str(app)]
    if with_config:
        config = tmp_path / "web.json5"
        config.write_text("// a comment, so JSON5 it is\n{ id: 'memory' }\n")
        args += ["--config", str(config)]
    process = spawn(*args, cwd=tmp_path)
    reply = fetch(process, "/?loaded")
    assert reply.status == 200
    loaded = reply.json()
    unwanted = {"shutil", "zlib", "bz2", "lzma", "getpass", "httap.init"}
    unwanted |= {"httap.serialport", "serial", "termios"}  # no serial port configured
    unwanted |= {"tarfile", "zipfile", "gzip", "hashlib", "_hashlib", "tempfile"}
    unwanted |= {"multipart", "python_multipart", "paho", "httap.mqtt", "ssl", "httap.tls"}
    unwanted |= {"httap.manager.files", "httap.site", "httap.unlink", "httap.persist"}
    assert sorted(unwanted.intersection(loaded["modules"])) == []
    assert "json5" not in loaded["modules"]  # loaded for the file's parse only, then dropped
    assert loaded["mimetypes_read"] is False
    assert fetch(process, "/?ping").status == 200
