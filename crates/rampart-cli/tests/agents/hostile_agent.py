"""A Python "agent" for tests/hostile.rs, run under `rampart preload` with the real library.

    hostile_agent.py SPEC.json

SPEC.json is {"cases": [CASE, ...]}; each CASE is
    {"name": str, "argv": [hex, ...], "executable": hex|null, "cwd": hex|null,
     "env": {name: hex}|null}
with every byte string hex-encoded (so arguments may hold any byte but NUL, which no
argv can). Each case is started with subprocess.run in order, and one JSON line is
printed for it:
    {"name": ..., "result": "ran", "rc": N, "stdout": hex}
    {"name": ..., "result": "eperm"}            PermissionError with errno 1
    {"name": ..., "result": "error", "detail": repr}
"""

import json
import subprocess
import sys


def unhex(h):
    return None if h is None else bytes.fromhex(h)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    for case in spec["cases"]:
        argv = [unhex(a) for a in case["argv"]]
        env = case.get("env")
        if env is not None:
            env = {k.encode(): unhex(v) for k, v in env.items()}
        out = {"name": case["name"]}
        try:
            done = subprocess.run(
                argv,
                executable=unhex(case.get("executable")),
                cwd=unhex(case.get("cwd")),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                timeout=60,
            )
        except PermissionError as e:
            if e.errno == 1:
                out["result"] = "eperm"
            else:
                out.update(result="error", detail=repr(e))
        except Exception as e:  # noqa: BLE001 - reported to the test as a failure
            out.update(result="error", detail=repr(e))
        else:
            out.update(result="ran", rc=done.returncode, stdout=done.stdout.hex())
        print(json.dumps(out), flush=True)


main()
