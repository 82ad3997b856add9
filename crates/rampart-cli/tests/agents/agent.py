"""A Python "agent" for tests/preload.rs, run under `rampart preload` with the real library.

    agent.py seed VICTIM        the seed's example: subprocess.run(['rm', '-rf', ...]) raises
    agent.py spawns VICTIM      every Python way to start a program, allowed and denied
    agent.py threads N M        N threads x M subprocess.run(['true'])
    agent.py wait-then-spawn F allow|deny
                                waits (bounded) until file F exists, then spawns `true`
    agent.py fetch              subprocess.run(['curl', '--version']), which the seed asks
                                about (named here so the agent's own command line is not)

Denied cases print "<case> deny ok" when Python raised PermissionError with errno 1
(EPERM); allowed ones print "<case> allow ok" after the program ran (the program prints
"<case> ran" itself). Anything else prints "<case> ... FAILED: <why>" and the exit status
counts the failures.
"""

import os
import subprocess
import sys
import threading
import time

failures = 0


def report(name, what, ok, detail=""):
    global failures
    if ok:
        print(f"{name} {what} ok", flush=True)
    else:
        failures += 1
        print(f"{name} {what} FAILED: {detail}", flush=True)


def expect_eperm(name, fn):
    try:
        fn()
    except PermissionError as e:
        report(name, "deny", e.errno == 1 and e.strerror == "Operation not permitted", repr(e))
    except Exception as e:  # noqa: BLE001 - anything else is the failure we report
        report(name, "deny", False, repr(e))
    else:
        report(name, "deny", False, "no exception")


def expect_ran(name, fn):
    try:
        code = fn()
    except Exception as e:  # noqa: BLE001
        report(name, "allow", False, repr(e))
    else:
        report(name, "allow", code == 0, f"exit status {code}")


def forked_execv(argv):
    """os.execv in a forked child; the child exits 42 on PermissionError."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        except PermissionError:
            os._exit(42)
        finally:
            os._exit(43)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def posix_spawn(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def spawns(victim):
    rm = ["rm", "-rf", victim]
    run = lambda argv, **kw: subprocess.run(argv, **kw).returncode  # noqa: E731

    expect_ran("subprocess", lambda: run(["echo", "subprocess ran"]))
    expect_eperm("subprocess", lambda: run(rm))
    expect_ran("subprocess-env", lambda: run(["echo", "subprocess-env ran"], env={"A": "1"}))
    expect_eperm("subprocess-env", lambda: run(rm, env={"A": "1"}))
    expect_ran("subprocess-empty-env", lambda: run(["echo", "subprocess-empty-env ran"], env={}))
    expect_eperm("subprocess-empty-env", lambda: run(rm, env={}))
    expect_ran("subprocess-shell", lambda: run("echo subprocess-shell ran", shell=True))
    # The policy reads `sh -c` bodies, so the shell itself is refused.
    expect_eperm("subprocess-shell", lambda: run(f"rm -rf {victim}", shell=True))

    sys.stdout.flush()
    code = os.system("echo os.system ran")
    report("os.system", "allow", code == 0, f"returned {code}")
    code = os.system(f"rm -rf {victim}")
    report("os.system", "deny", code == -1, f"returned {code}")

    expect_ran("os.execv", lambda: forked_execv(["/usr/bin/echo", "os.execv ran"]))
    code = forked_execv(["/usr/bin/rm", "-rf", victim])
    report("os.execv", "deny", code == 42, f"child exit status {code}")

    sys.stdout.flush()
    expect_ran("os.posix_spawn", lambda: posix_spawn(["/usr/bin/echo", "os.posix_spawn ran"]))
    expect_eperm("os.posix_spawn", lambda: posix_spawn(["/usr/bin/rm", "-rf", victim]))

    report("victim", "kept", os.path.isdir(victim), "the victim directory is gone")


def threads(n, m):
    errors = []

    def work():
        for _ in range(m):
            try:
                code = subprocess.run(["true"]).returncode
                if code != 0:
                    errors.append(f"exit status {code}")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    workers = [threading.Thread(target=work) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"{n * m} spawns, {len(errors)} errors {errors[:3]}", flush=True)
    return 1 if errors else 0


def wait_then_spawn(flag, expect):
    print("waiting", flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            print("gave up waiting", flush=True)
            return 2
        time.sleep(0.02)
    spawn = lambda: subprocess.run(["true"]).returncode  # noqa: E731
    (expect_eperm if expect == "deny" else expect_ran)("after-server-died", spawn)
    return failures


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seed":
        # The seed page's example, verbatim: the traceback ends in PermissionError.
        subprocess.run(["rm", "-rf", args[0]])
        return 0
    if cmd == "spawns":
        spawns(args[0])
    elif cmd == "threads":
        return threads(int(args[0]), int(args[1]))
    elif cmd == "wait-then-spawn":
        return wait_then_spawn(args[0], args[1])
    elif cmd == "fetch":
        try:
            code = subprocess.run(["cu" + "rl", "--version"], stdout=subprocess.DEVNULL).returncode
            print(f"exit status {code}", flush=True)
        except OSError as e:
            print(f"{type(e).__name__} errno {e.errno}", flush=True)
    else:
        print(f"unknown case {cmd}", file=sys.stderr)
        return 100
    return failures


if __name__ == "__main__":
    sys.exit(main())
