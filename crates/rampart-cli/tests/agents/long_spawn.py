"""A Python "agent" for tests/long.rs: THREADS threads spawn programs for SECS seconds.

    long_spawn.py TAG THREADS SECS SCRATCH RECORD

Thread t's n-th spawn carries the marker TAG-t-n as its last argument and is, by n:
  n % 7 == 6         touch SCRATCH/no/MARKER        denied by the test's policy; expected
                     to fail with EPERM (by turns through subprocess.run, which walks PATH
                     itself and tries every candidate, and os.posix_spawn of /bin/touch)
  else n % 3 == 0    echo MARKER                    allowed (found on PATH); its stdout
                     must be MARKER
  else n % 3 == 1    /bin/touch SCRATCH/ok/MARKER   allowed, through subprocess.run with an
                     empty environment (the library must put itself back)
  else n % 3 == 2    /bin/touch SCRATCH/ok/MARKER   allowed, through os.posix_spawn (also
                     with an empty environment)
Programs are started from argv lists (no shell), so one spawn is one exec.

The summary line on stdout also gives the number of open descriptors before and after:
the library may keep one connection to the server, never more.

RECORD gets one JSON line per spawn: {"marker", "expect": "ran"|"eperm", "api",
"outcome", "detail"}, where outcome is "ran" (exit status 0, and for echo the right
output), "eperm" (PermissionError with errno 1), or what happened instead ("exit N",
"signal N", "timeout", "error ..."). The test compares RECORD with the audit trail; this
script only fails (exit 1) when a thread itself broke.
"""

import json
import os
import select
import subprocess
import sys
import threading
import time

# A spawn that hangs is recorded as a timeout instead of hanging the thread for ever.
SPAWN_TIMEOUT = 60
# Bounds the loop even if the clock misbehaves.
MAX_PER_THREAD = 1_000_000


def posix_spawn_wait(argv):
    pid = os.posix_spawn(argv[0], argv, {})
    fd = os.pidfd_open(pid)
    try:
        ready = select.select([fd], [], [], SPAWN_TIMEOUT)[0]
        if not ready:
            os.kill(pid, 9)
    finally:
        os.close(fd)
    status = os.waitpid(pid, 0)[1]
    if not ready:
        raise subprocess.TimeoutExpired(argv, SPAWN_TIMEOUT)
    return os.waitstatus_to_exitcode(status)


def spawn_once(tag, scratch, t, n):
    marker = f"{tag}-{t}-{n}"
    if n % 7 == 6:
        expect = "eperm"
        api = "posix_spawn" if (n // 7) % 2 else "subprocess"
        touch = "/bin/touch" if api == "posix_spawn" else "touch"
        argv = [touch, f"{scratch}/no/{marker}"]
    else:
        expect = "ran"
        kind = n % 3
        if kind == 0:
            argv, api = ["echo", marker], "subprocess-capture"
        else:
            argv = ["/bin/touch", f"{scratch}/ok/{marker}"]
            api = "subprocess-env" if kind == 1 else "posix_spawn"
    detail = ""
    try:
        if api == "posix_spawn":
            code = posix_spawn_wait(argv)
            output_ok = True
        elif api == "subprocess-capture":
            r = subprocess.run(argv, stdout=subprocess.PIPE, timeout=SPAWN_TIMEOUT)
            code = r.returncode
            output_ok = r.stdout == f"{marker}\n".encode()
            if not output_ok:
                detail = f"stdout {r.stdout!r}"
        else:
            env = {} if api == "subprocess-env" else None
            code = subprocess.run(argv, env=env, timeout=SPAWN_TIMEOUT).returncode
            output_ok = True
        if code == 0 and output_ok:
            outcome = "ran"
        elif code == 0:
            outcome = "wrong output"
        elif code < 0:
            outcome = f"signal {-code}"
        else:
            outcome = f"exit {code}"
    except PermissionError as e:
        outcome = "eperm" if e.errno == 1 else f"error {e!r}"
    except subprocess.TimeoutExpired:
        outcome = "timeout"
    except Exception as e:  # noqa: BLE001 - recorded, the test reports it
        outcome = f"error {e!r}"
    return {"marker": marker, "expect": expect, "api": api, "outcome": outcome, "detail": detail}


def open_fds():
    count = 0
    for fd in range(4096):
        try:
            os.fstat(fd)
        except OSError:
            continue
        count += 1
    return count


def main():
    tag, threads, secs, scratch, record = sys.argv[1:6]
    threads, secs = int(threads), float(secs)
    deadline = time.monotonic() + secs
    records = [[] for _ in range(threads)]
    broken = []

    def work(t):
        try:
            n = 0
            while n < MAX_PER_THREAD and time.monotonic() < deadline:
                records[t].append(spawn_once(tag, scratch, t, n))
                n += 1
        except BaseException as e:  # noqa: BLE001 - a broken thread fails the agent
            broken.append(f"thread {t}: {e!r}")

    fds_before = open_fds()
    started = time.monotonic()
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.monotonic() - started
    fds_after = open_fds()
    with open(record, "w") as f:
        for rs in records:
            for r in rs:
                f.write(json.dumps(r) + "\n")
    total = sum(len(rs) for rs in records)
    print(
        f"python: {threads} threads, {total} spawns in {elapsed:.1f} s, "
        f"open fds {fds_before} -> {fds_after}",
        flush=True,
    )
    for b in broken:
        print(b, file=sys.stderr)
    sys.exit(1 if broken else 0)


main()
