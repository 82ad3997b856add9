"""Python as the agent: run under LD_PRELOAD=librampart.so against tests/fake_server.py
(normal mode). TEST_LOG is the server's request log, TEST_LIB the library path.
Prints one line per check and "N passed, N failed"; exit 1 on any failure."""

import os
import subprocess
import sys

LOG = os.environ["TEST_LOG"]
LIB = os.environ["TEST_LIB"]
results = [0, 0]


def requests():
    with open(LOG) as f:
        return sum(1 for _ in f)


def check(name, fn):
    try:
        fn()
        results[0] += 1
        print("ok   python:", name, flush=True)
    except Exception as e:  # noqa: BLE001 - report anything
        results[1] += 1
        print("FAIL python:", name, "-", repr(e), flush=True)


def raises_eperm(fn):
    try:
        fn()
    except PermissionError as e:
        assert e.errno == 1, e
        return
    raise AssertionError("no PermissionError")


def subprocess_rm_denied():
    raises_eperm(lambda: subprocess.run(["rm", "-rf", "/tmp/rampart-test-x"]))


def subprocess_allowed_once():
    before = requests()
    env = dict(os.environ, PATH="/nonexistent-1:/nonexistent-2:/usr/bin:/bin")
    assert subprocess.run(["true"], env=env).returncode == 0
    assert requests() - before == 1, requests() - before


def subprocess_empty_env_checked():
    raises_eperm(lambda: subprocess.run(["/bin/echo", "denyme"], env={}))
    out = subprocess.run(
        ["/bin/sh", "-c", "echo $LD_PRELOAD $RAMPART_MODE"], env={}, capture_output=True, text=True
    ).stdout
    assert LIB in out and "enforce" in out, out


def os_system():
    assert os.system("echo denyme") == -1
    assert os.system("exit 3") == 3 << 8


def os_posix_spawn():
    raises_eperm(lambda: os.posix_spawn("/bin/echo", ["echo", "denyme"], os.environ))
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 5"], os.environ)
    assert os.waitpid(pid, 0)[1] == 5 << 8


def os_execv_in_child():
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/bin/echo", ["echo", "denyme"])
        except PermissionError:
            os._exit(77)
        os._exit(78)
    assert os.waitpid(pid, 0)[1] == 77 << 8


def keep_alive_and_fork():
    # posix_spawn runs in the real process, so its connection is kept and reused; a
    # forked child must open its own.
    def spawn_true():
        pid = os.posix_spawn("/bin/true", ["true"], os.environ)
        os.waitpid(pid, 0)

    with open(LOG) as f:
        start = sum(1 for _ in f)
    for _ in range(4):
        spawn_true()
    child = os.fork()
    if child == 0:
        spawn_true()
        os._exit(0)
    os.waitpid(child, 0)
    spawn_true()
    import json

    with open(LOG) as f:
        lines = [json.loads(l) for l in f][start:]
    peers = [l["peer"] for l in lines]
    assert len(peers) == 6, peers
    parent = peers[:4] + peers[5:]
    if peers[0] is not None:  # TCP: the port names the connection
        assert len(set(parent)) == 1, peers
        assert peers[4] != peers[0], peers


for name, fn in [
    ("subprocess.run(['rm','-rf',...]) raises PermissionError errno 1", subprocess_rm_denied),
    ("subprocess through missing PATH dirs asks once", subprocess_allowed_once),
    ("subprocess with env={} still checked and re-injected", subprocess_empty_env_checked),
    ("os.system deny -1 / allow status", os_system),
    ("os.posix_spawn deny EPERM / allow", os_posix_spawn),
    ("os.execv in a forked child", os_execv_in_child),
    ("keep-alive per process, fresh connection after fork", keep_alive_and_fork),
]:
    check(name, fn)

print(f"{results[0]} passed, {results[1]} failed")
sys.exit(1 if results[1] else 0)
