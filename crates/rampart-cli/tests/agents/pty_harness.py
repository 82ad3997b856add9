"""Runs a command as the leader of a new session whose controlling terminal is a fresh
pseudo-terminal, with its stdout and stderr going to files: only what is written to
/dev/tty reaches the terminal. When the terminal shows a `[WAIT]` line naming
`rampart approve ID`, the harness answers it with `$PTY_RAMPART $PTY_ANSWER ID` (approve
or deny; RAMPART_HOME comes from the environment). At the end it prints one JSON object:
{"tty": ..., "stdout": ..., "stderr": ..., "code": ..., "answered": ID}.

    pty_harness.py CMD [ARG...]
"""

import fcntl
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import termios
import time

answer = os.environ.get("PTY_ANSWER", "approve")
rampart = os.environ["PTY_RAMPART"]
master, slave = os.openpty()
out = tempfile.TemporaryFile()
err = tempfile.TemporaryFile()


def controlling_terminal():
    # stdin is the terminal: make it this new session's controlling terminal.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


child = subprocess.Popen(
    sys.argv[1:], stdin=slave, stdout=out, stderr=err, preexec_fn=controlling_terminal
)
os.close(slave)
tty = b""
answered = None
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    ready, _, _ = select.select([master], [], [], 0.1)
    if ready:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            chunk = b""
        tty += chunk
        if not chunk:
            # Every writer closed the terminal (EIO): done once the command is.
            if child.poll() is not None:
                break
            time.sleep(0.05)
    if answered is None:
        m = re.search(rb"'rampart approve ([0-9A-Za-z]+)'", tty)
        if m:
            answered = m.group(1).decode()
            subprocess.run([rampart, answer, answered], check=True, capture_output=True)
    if not ready and child.poll() is not None:
        break
child.wait(timeout=max(1, deadline - time.monotonic()))
out.seek(0)
err.seek(0)
print(
    json.dumps(
        {
            "tty": tty.decode(errors="replace").replace("\r\n", "\n"),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "code": child.returncode,
            "answered": answered,
        }
    )
)
