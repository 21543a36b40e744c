"""Who holds a lease, and when a holder counts as gone (``mwingest.job.context``).

The process checks are real: a child process that exits gives a pid that is gone, and a child in
a new pid namespace (``unshare``, as a container would be) is another pid space.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from mwingest.job.context import new_owner, owner_alive, pid_space


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_owner_names_host_pid_and_pid_space() -> None:
    host, pid, token, space = new_owner().split(":")
    assert (host, int(pid), space) == (socket.gethostname(), os.getpid(), pid_space())
    assert len(token) == 8 and new_owner() != new_owner()


def test_a_gone_process_of_this_pid_space_is_dead_and_a_live_one_alive() -> None:
    assert owner_alive(new_owner())
    dead = f"{socket.gethostname()}:{_gone_pid()}:abcd0123:{pid_space()}"
    assert not owner_alive(dead)


def test_a_gone_pid_of_another_pid_space_with_our_host_name_is_left_alive() -> None:
    """Two containers sharing a host name: the other's pid means nothing here."""
    other = f"{socket.gethostname()}:{_gone_pid()}:abcd0123:0123456789ab"
    assert owner_alive(other)


def test_an_owner_of_an_older_mwingest_is_judged_by_host_name() -> None:
    pid = _gone_pid()
    assert not owner_alive(f"{socket.gethostname()}:{pid}:abcd0123")
    assert owner_alive(f"elsewhere.example:{pid}:abcd0123")
    assert owner_alive("not an owner")


def test_a_process_in_another_pid_namespace_is_another_pid_space() -> None:
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-p", "-f", "true"], capture_output=True) \
        if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no new pid namespace here (unshare needs root or user namespaces)")
    code = "from mwingest.job.context import new_owner; print(new_owner())"
    theirs = subprocess.run([unshare, "-p", "-f", "--mount-proc", sys.executable, "-c", code],
                            capture_output=True, text=True, check=True).stdout.strip()
    host, pid, _token, space = theirs.split(":")
    assert host == socket.gethostname() and space != pid_space()
    assert int(pid) == 1  # the first process of its namespace, as in a container
