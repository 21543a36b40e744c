"""The warm runner's plain parts: which commands go warm, the wire format with real file
descriptors, the code stamp and when a command does not even try (``mwingest.runtime.warm``)."""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

import pytest

from mwingest.base.paths import Paths
from mwingest.runtime import warm


@pytest.mark.parametrize(("argv", "command"), [
    (["upload", "a.png"], "upload"),
    (["-v", "import", "folder"], "import"),
    (["upload", "--help"], None),
    (["status"], "status"),
    ([], None),
])
def test_the_command_word_past_the_apps_options(argv, command):
    assert warm._command_of(argv) == command


def test_a_message_carries_real_descriptors_the_other_side_can_write_to(tmp_path):
    """What the runner receives are the command's own streams, not copies of their content."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    big = {"argv": ["upload", "x"], "env": {f"VAR{n}": "v" * 100 for n in range(500)}}
    warm._send(ours, big, [write_end, write_end, write_end])
    message, fds = warm._recv(theirs, with_fds=3)
    assert message == big and len(fds) == 3  # 50 kB: more than one read of the socket
    os.write(fds[1], b"through the passed descriptor")
    for fd in fds:
        os.close(fd)
    os.close(write_end)
    assert os.read(read_end, 100) == b"through the passed descriptor"
    ours.close()
    with pytest.raises(EOFError):
        warm._recv(theirs)


@pytest.mark.parametrize("module", ["mwingest.runtime.warm", "mwingest.job.machine"])
def test_the_code_stamp_changes_with_a_module_on_disk(module):
    """Any module of the package counts, not only the runner's own folder."""
    module = Path(importlib.import_module(module).__file__)
    before = warm.code_stamp()
    st = module.stat()
    try:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert warm.code_stamp() != before
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert warm.code_stamp() == before


def test_the_socket_path_is_short_and_per_home(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = warm.socket_path(Paths(deep))
    assert len(str(path)) < 100 and path != warm.socket_path(Paths(tmp_path))


@pytest.mark.parametrize("env", [{"MWINGEST_WARM": "0"}, {"PREFECT_API_URL": "http://x/api"},
                                 {"MWINGEST_PREFECT": "ephemeral"}, {}])
def test_no_runner_or_another_prefect_means_running_here(env, monkeypatch, tmp_path):
    for name in ("MWINGEST_WARM", "PREFECT_API_URL", "MWINGEST_PREFECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MWINGEST_HOME", str(tmp_path / "home"))  # no runner listens for it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert warm.run_warm(["upload", "a.png"]) is None
    assert warm.run_warm(["status"]) is None


def test_the_runtime_directory_is_preferred_when_it_is_private(tmp_path, monkeypatch):
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert warm.socket_path(Paths(tmp_path)).parent == runtime / "mwingest"
    runtime.chmod(0o755)  # not private: not trusted as the user's own
    assert warm.socket_path(Paths(tmp_path)).parent.name == f"mwingest-{os.getuid()}"


def _listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def test_a_socket_is_trusted_only_in_a_private_directory_of_the_users_own(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with _listening(private / "r.sock"):
        assert warm.untrusted_reason(private / "r.sock") is None
        private.chmod(0o770)  # a group could have put it there
        assert "not a private directory" in warm.untrusted_reason(private / "r.sock")
        private.chmod(0o700)
        link = tmp_path / "link"
        link.symlink_to(private)  # a link: whoever owns where it points decides
        assert "not a private directory" in warm.untrusted_reason(link / "r.sock")
    (private / "file.sock").write_text("")
    assert "not a socket" in warm.untrusted_reason(private / "file.sock")
    assert warm.untrusted_reason(private / "none.sock") == "no socket"


def test_the_peers_uid_comes_from_the_kernel():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        assert warm.peer_uid(ours) == os.getuid()


def test_a_listener_of_another_user_at_a_trusted_path_is_sent_nothing(tmp_path, monkeypatch):
    """The file checks pass (a private directory, a socket owned by this user) but the process
    that listens runs as another user: the command must close without sending."""
    monkeypatch.setenv("MWINGEST_HOME", str(tmp_path / "home"))
    for name in ("MWINGEST_WARM", "PREFECT_API_URL", "MWINGEST_PREFECT", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    path = warm.socket_path(Paths())
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with _listening(path) as sock:
        monkeypatch.setattr(warm, "peer_uid", lambda conn: os.getuid() + 1)  # "someone else"
        sock.settimeout(5)
        assert warm.run_warm(["upload", "a.png"]) is None
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            assert conn.recv(65536) == b""  # connected, then closed: not one byte sent
    path.unlink()
