#!/usr/bin/env bash
# End-to-end tests of librampart.so against tests/fake_server.py: exported symbols, the
# seed's troubleshooting and debug output, every entry point (tests/entry_points.c), the
# fail-open matrix, monitor/disabled modes, Unix socket, token, ask, and Python, Node and
# bash as agents. Ends with "N passed, N failed"; exit 1 on any failure.
#
#   ./test_preload.sh                 # uses build/librampart.so (run `make` first)
#   RAMPART_LIB=/path/librampart.so ./test_preload.sh
#
# Everything runs in a throw-away RAMPART_HOME; ~/.rampart is never touched. The fake
# server is started here; the server-dependent helpers take URL/token as parameters so a
# real `rampart serve` can replace it for end-to-end runs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=${RAMPART_LIB:-$HERE/build/librampart.so}
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rampart-preload-test.XXXXXX")
export RAMPART_HOME=$WORK/home
export PATH=/usr/local/bin:/usr/bin:/bin
# Nothing from the caller's environment may steer the library under test.
unset LD_PRELOAD RAMPART_URL RAMPART_TOKEN RAMPART_MODE RAMPART_FAIL_OPEN RAMPART_AGENT \
    RAMPART_SESSION RAMPART_DEBUG RAMPART_ASK_TIMEOUT RAMPART_DEBUG_LOADED RAMPART_PROTECT \
    RAMPART_UNCHECKED http_proxy HTTP_PROXY CI
PASS=0
FAIL=0
SERVERS=()

cleanup() {
    for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1${2:+: $2}"; }
expect() { # expect NAME ACTUAL WANTED
    if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1" "got '$2', want '$3'"; fi
}

if [[ ! -f "$LIB" ]]; then
    echo "no library at $LIB: run 'make' first" >&2
    exit 2
fi

# start_server NAME [fake_server args...]: sets URL_<NAME>, LOG_<NAME>, MODE_<NAME>.
start_server() {
    local name=$1
    shift
    local log=$WORK/$name.log mode=$WORK/$name.mode out=$WORK/$name.out
    : >"$log"
    "$PYTHON" "$HERE/tests/fake_server.py" --log "$log" --mode-file "$mode" "$@" >"$out" 2>"$WORK/$name.err" &
    SERVERS+=($!)
    for _ in $(seq 100); do [[ -s "$out" ]] && break; sleep 0.05; done
    local where
    where=$(head -1 "$out")
    if [[ "$where" == /* ]]; then
        printf -v "URL_$name" 'unix:%s' "$where"
    else
        printf -v "URL_$name" 'http://127.0.0.1:%s' "$where"
    fi
    printf -v "LOG_$name" '%s' "$log"
    printf -v "MODE_$name" '%s' "$mode"
}

requests() { wc -l <"$1" | tr -d ' '; }
# The library's line of the last probe (the program's own complaint follows it).
reason() { head -1 "$WORK/probe.err"; }

# probe WORD [VAR=value...]: a preloaded `env` execs `/bin/echo WORD` under the given
# configuration; prints "ran", "blocked" (exit 126 + the one-line reason) or "other ...".
probe() {
    local word=$1
    shift
    local out err rc
    out=$(env "$@" LD_PRELOAD="$LIB" /usr/bin/env /bin/echo "$word" 2>"$WORK/probe.err")
    rc=$?
    err=$(cat "$WORK/probe.err")
    if [[ $rc == 0 && "$out" == "$word" ]]; then
        echo ran
    elif [[ $rc == 126 && "$err" == *"rampart: [ERROR] Policy denied: "* ]]; then
        echo blocked
    else
        echo "other rc=$rc out=$out err=$err"
    fi
}

echo "# library: $LIB"

# ---- the library itself ----
syms=$(nm -D --defined-only "$LIB" | awk '{print $3}' | sort | tr '\n' ' ')
want="execl execle execlp execv execve execveat execvp execvpe fexecve popen posix_spawn posix_spawnp system "
expect "exports exactly the 13 intercepted symbols" "$syms" "$want"
deps=$(ldd "$LIB" | grep -v -e 'libc.so' -e 'ld-linux' -e 'linux-vdso' -e 'statically' | tr -d '\t')
expect "links libc only" "$deps" ""
# Every import is a symbol the dynamic linker looks up in every process that loads the
# library: system calls are made directly (src/syscall.rs), so only these may appear.
allowed=" __errno_location bcmp clock_gettime dladdr dlsym environ memcmp memcpy memmove memset strlen "
extra=""
for s in $(readelf --dyn-syms -W "$LIB" | awk '$7 == "UND" && $8 != "" {sub(/@.*/, "", $8); print $8}'); do
    [[ $allowed == *" $s "* ]] || extra+="$s "
done
expect "imports nothing from libc but memory/string functions, errno, the clock and dlsym/dladdr" "$extra" ""

# ---- seed: troubleshooting and debug output ----
out=$(RAMPART_URL=http://127.0.0.1:1 LD_PRELOAD=$LIB /bin/echo test 2>"$WORK/err")
expect "LD_PRELOAD=... echo test prints test, nothing else" "$out|$(cat "$WORK/err")" "test|"
err=$(RAMPART_DEBUG=1 LD_PRELOAD=$LIB /bin/echo test 2>&1 >/dev/null)
expect "RAMPART_DEBUG=1 prints the load banner" "$err" "rampart: [DEBUG] Library loaded
rampart: [DEBUG] URL: http://127.0.0.1:9090
rampart: [DEBUG] Mode: enforce
rampart: [DEBUG] Fail-open: true"

start_server main
start_server unixsrv --unix "$WORK/rampart.sock"
start_server tok --token s3cret

err=$(RAMPART_URL=$URL_main RAMPART_DEBUG=1 LD_PRELOAD=$LIB /usr/bin/env /bin/sh -c '/bin/rm -rf /tmp/rampart-nothing-*' 2>&1 >/dev/null)
expect "debug lines for a call, banner printed once per tree" "$err" "rampart: [DEBUG] Library loaded
rampart: [DEBUG] URL: $URL_main
rampart: [DEBUG] Mode: enforce
rampart: [DEBUG] Fail-open: true
rampart: [DEBUG] Intercepted execvp: /bin/sh -c '/bin/rm -rf /tmp/rampart-nothing-*'
rampart: [DEBUG] Policy check: POST /v1/preflight/exec
rampart: [DEBUG] Decision: deny
rampart: [ERROR] Policy denied: Destructive command blocked
/usr/bin/env: ‘/bin/sh’: Operation not permitted"

# ---- every entry point ----
CC=${CC:-cc}
if [[ ! -x "$HERE/build/entry_points" || "$HERE/tests/entry_points.c" -nt "$HERE/build/entry_points" ]]; then
    mkdir -p "$HERE/build"
    $CC -O1 -Wall -o "$HERE/build/entry_points" "$HERE/tests/entry_points.c" -lpthread
fi
if RAMPART_SESSION=entry-points RAMPART_URL=$URL_main LD_PRELOAD=$LIB \
    "$HERE/build/entry_points" "$LOG_main" "$LIB" >"$WORK/ep.out" 2>"$WORK/ep.err"; then
    ok "entry points: $(tail -1 "$WORK/ep.out")"
else
    fail "entry points" "$(grep -E '^FAIL|passed' "$WORK/ep.out")"
fi

# ---- fail-open matrix ----
# Fail-open applies when nobody answered, and only then; it is never silent.
REFUSED=http://127.0.0.1:1
expect "refused, fail-open default: runs" "$(probe hello RAMPART_URL=$REFUSED)" ran
expect "refused, fail-open: one WARN line names the URL and the way to fail closed" "$(cat "$WORK/probe.err")" \
    "rampart: [WARN] policy server unreachable at $REFUSED: /bin/echo hello runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)"
expect "refused, RAMPART_FAIL_OPEN=false: EPERM" "$(probe hello RAMPART_URL=$REFUSED RAMPART_FAIL_OPEN=false)" blocked
expect "refused, RAMPART_FAIL_OPEN=0: EPERM" "$(probe hello RAMPART_URL=$REFUSED RAMPART_FAIL_OPEN=0)" blocked
expect "refused, RAMPART_FAIL_OPEN=no: EPERM" "$(probe hello RAMPART_URL=$REFUSED RAMPART_FAIL_OPEN=no)" blocked
expect "refused, RAMPART_PROTECT=1 with fail-open: EPERM" "$(probe hello RAMPART_URL=$REFUSED RAMPART_PROTECT=1)" blocked
expect "refused, RAMPART_PROTECT=1: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: policy server unreachable at $REFUSED and RAMPART_PROTECT is on"
expect "RAMPART_PROTECT=0 is off: fail-open runs" "$(probe hello RAMPART_URL=$REFUSED RAMPART_PROTECT=0)" ran
# Empty is off too — the launchers' rule (one rule, rampart_contract::values::protect).
expect "RAMPART_PROTECT= (empty) is off: fail-open runs" "$(probe hello RAMPART_URL=$REFUSED RAMPART_PROTECT=)" ran
# Programs run unchecked are counted until the server can be told, in a page shared
# with every process forked or vforked from the agent, which also says the WARN line
# once for all of them. dash vforks, bash forks: either way the child counts into the
# shell's page, and the shell's own exec hands the count plus itself to the program.
for sh in /bin/sh bash; do
    out=$(RAMPART_URL=$REFUSED LD_PRELOAD=$LIB $sh -c '/usr/bin/env; exec /usr/bin/env' 2>"$WORK/tree.err" | grep '^RAMPART_UNCHECKED=' | tr '\n' ' ')
    expect "fail-open, $sh: the count reaches the shell's exec, one WARN line" "$out|$(grep -c WARN "$WORK/tree.err")|$(wc -l <"$WORK/tree.err")" "RAMPART_UNCHECKED=2 |1|1"
done
# A request that cannot be built is not "nobody answered": enforce refuses whatever
# fail-open says (before, these ran unchecked and silently).
expect "unusable URL, fail-open: EPERM" "$(probe hello RAMPART_URL=https://example.invalid)" blocked
expect "unusable URL: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: RAMPART_URL https://example.invalid is not a supported URL (use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path; no https, no host names)"
expect "relative unix: URL, fail-open: EPERM" "$(probe hello RAMPART_URL=unix:rampart.sock)" blocked
expect "relative unix: URL: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: RAMPART_URL unix:rampart.sock is a relative unix: socket path (give an absolute path: the library runs in every working directory)"
expect "unusable URL, fail-closed: EPERM" "$(probe hello RAMPART_URL=https://example.invalid RAMPART_FAIL_OPEN=false)" blocked
expect "unusable URL, monitor: runs, with a WARN line" "$(probe hello RAMPART_URL=https://example.invalid RAMPART_MODE=monitor)|$(cut -c1-16 "$WORK/probe.err")" "ran|rampart: [WARN] "
expect "unusable URL, disabled: runs silently" "$(probe hello RAMPART_URL=https://example.invalid RAMPART_MODE=disabled)|$(cat "$WORK/probe.err")" "ran|"
expect "missing unix socket, fail-open: runs" "$(probe hello RAMPART_URL=unix:$WORK/none.sock)" ran
expect "missing unix socket, fail-closed: EPERM" "$(probe hello RAMPART_URL=unix:$WORK/none.sock RAMPART_FAIL_OPEN=false)" blocked

M=(RAMPART_URL=$URL_main)
setmode() { echo "$1" >"$MODE_main"; }

# tprobe WORD [VAR=value...]: probe, then the wall time of the whole probe in ms.
tprobe() {
    local start r
    start=$(date +%s%N)
    r=$(probe "$@")
    echo "$r $((($(date +%s%N) - start) / 1000000))"
}
# within NAME "OUTCOME MS" WANT MIN_MS MAX_MS
within() {
    local got=${2% *} ms=${2##* }
    if [[ "$got" == "$3" ]] && ((ms >= $4 && ms <= $5)); then
        ok "$1 (${ms} ms)"
    else
        fail "$1" "got '$got' after ${ms} ms, want '$3' within $4..$5 ms"
    fi
}

# The library's documented limits: connect 1 s, answer 2 s (+ wait_ms, which
# RAMPART_ASK_TIMEOUT=0 turns off). Upper bounds are the limit + 2.5 s for a busy machine;
# lower bounds show that the limit, not some other failure, ended the wait.
ANSWER=2000
SLACK=2500
Z=(RAMPART_ASK_TIMEOUT=0)
# A server that holds the answer: hang (never answers), slow (5 s): not one byte in time
# is "nobody answered". drip-slow (one byte every 50 ms, ~10 s: only a total deadline
# stops it, a per-read timeout never would) did answer, cut off by the deadline: refused
# in enforce whatever fail-open says.
for mode in hang slow drip-slow; do
    setmode $mode
    if [[ $mode == drip-slow ]]; then want=blocked; else want=ran; fi
    within "$mode, fail-open: $want at the answer timeout" "$(tprobe hello "${M[@]}" "${Z[@]}")" $want $((ANSWER - 100)) $((ANSWER + SLACK))
    within "$mode, fail-closed: EPERM at the answer timeout" "$(tprobe hello "${M[@]}" "${Z[@]}" RAMPART_FAIL_OPEN=false)" blocked $((ANSWER - 100)) $((ANSWER + SLACK))
    within "$mode, monitor (no wait_ms): runs at the answer timeout" "$(tprobe denyme "${M[@]}" RAMPART_MODE=monitor RAMPART_FAIL_OPEN=false)" ran $((ANSWER - 100)) $((ANSWER + SLACK))
done
setmode drip-slow
probe hello "${M[@]}" "${Z[@]}" >/dev/null
expect "drip-slow: the reason" "$(reason)" "rampart: [ERROR] Policy denied: the policy server's answer was cut off"
setmode hang
within "hang while an ask may be held (RAMPART_ASK_TIMEOUT=1s): waits 1 s + 2 s, then fail-open" \
    "$(tprobe hello "${M[@]}" RAMPART_ASK_TIMEOUT=1s)" ran 2900 $((3000 + SLACK))
err=$(cat "$WORK/probe.err")
expect "hang during a possible ask: one WAIT line, then the WARN line" "$err" "rampart: [WAIT] Waiting for approval of: /bin/echo hello -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard
rampart: [WARN] policy server did not answer in time at $URL_main: /bin/echo hello runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)"
# Quick failures: no waiting at all, whatever the timeouts. Only "close" (accepted, then
# closed before any answer byte) is "nobody answered"; a 5xx or a cut answer is an answer
# that is not an allow, and refuses in enforce even with fail-open (before, they ran).
for mode in 500 502 503 close cut-headers cut-body; do
    setmode $mode
    if [[ $mode == close ]]; then want=ran; else want=blocked; fi
    within "$mode, fail-open: $want" "$(tprobe hello "${M[@]}")" $want 0 $SLACK
    within "$mode, fail-closed: EPERM" "$(tprobe hello "${M[@]}" RAMPART_FAIL_OPEN=false)" blocked 0 $SLACK
    within "$mode, monitor: runs" "$(tprobe hello "${M[@]}" RAMPART_MODE=monitor)" ran 0 $SLACK
done
setmode 503
probe hello "${M[@]}" >/dev/null
expect "503, fail-open: the reason names the status" "$(reason)" \
    "rampart: [ERROR] Policy denied: policy server error (HTTP 503)"
probe hello "${M[@]}" RAMPART_MODE=monitor >/dev/null
expect "503, monitor: runs unchecked with one WARN line" "$(cat "$WORK/probe.err")" \
    "rampart: [WARN] policy server error (HTTP 503) at $URL_main: /bin/echo hello runs unchecked (monitor mode never blocks; said once)"
setmode cut-body
probe hello "${M[@]}" >/dev/null
expect "cut-body, fail-open: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: the policy server's answer was cut off"
setmode close
probe hello "${M[@]}" RAMPART_FAIL_OPEN=false >/dev/null
expect "close, fail-closed: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: policy server closed the connection without an answer at $URL_main and fail-open is off"
# Answers that are wrong, not missing: enforce denies whatever fail-open says.
for mode in 401 403 malformed oversized huge huge-close instring stringbool; do
    setmode $mode
    within "$mode denies in enforce even with fail-open" "$(tprobe hello "${M[@]}" RAMPART_FAIL_OPEN=true)" blocked 0 $SLACK
    within "$mode denies in enforce with fail-closed" "$(tprobe hello "${M[@]}" RAMPART_FAIL_OPEN=false)" blocked 0 $SLACK
    within "$mode never blocks in monitor" "$(tprobe hello "${M[@]}" RAMPART_MODE=monitor RAMPART_FAIL_OPEN=false)" ran 0 $SLACK
done
setmode huge
probe hello "${M[@]}" >/dev/null
expect "huge (1 MiB): the reason" "$(reason)" "rampart: [ERROR] Policy denied: oversized answer from the policy server"
setmode stringbool
probe hello "${M[@]}" >/dev/null
expect "\"allowed\":\"true\" (a string): the reason" "$(reason)" "rampart: [ERROR] Policy denied: malformed answer from the policy server"
# Answers that arrive in awkward pieces but in time: the server's verdict counts.
for mode in chunked drip-fast slowok; do
    setmode $mode
    within "$mode answer: allow" "$(tprobe hello "${M[@]}" RAMPART_FAIL_OPEN=false)" ran 0 $((ANSWER + SLACK))
    within "$mode answer: deny" "$(tprobe denyme "${M[@]}")" blocked 0 $((ANSWER + SLACK))
done
# A request over the server's size limit: the server answers 413 before reading the body
# and closes, so the library's send fails half-way. The 413 must still be read and deny
# (before, the failed send counted as "closed without an answer" and fail-open ran the
# unchecked command about half the time). Five tries, every one must deny.
setmode early-413
big=$(for i in 1 2 3 4 5; do
    RAMPART_URL=$URL_main LD_PRELOAD=$LIB "$PYTHON" -c '
import subprocess
try:
    print("ran", subprocess.run(["/bin/true"] + ["y" * 100000] * 12).returncode)
except PermissionError as e:
    print("eperm", e.errno)' 2>>"$WORK/big.err"
done | sort | uniq -c | tr -s ' ')
expect "over-limit request, 413 sent before the body was read: denied 5 of 5 times, fail-open" "$big" " 5 eperm 1"
expect "over-limit request: the reason" "$(sort -u "$WORK/big.err")" "rampart: [ERROR] Policy denied: unexpected answer from the policy server (HTTP 413)"
setmode normal
expect "normal: allow" "$(probe hello "${M[@]}")" ran
expect "normal: deny" "$(probe denyme "${M[@]}")" blocked

# Servers that never get as far as HTTP.
start_server deaf --listen-only
within "accepted by the kernel, never read: fail-open runs at the answer timeout" \
    "$(tprobe hello RAMPART_URL=$URL_deaf "${Z[@]}")" ran $((ANSWER - 100)) $((ANSWER + SLACK))
within "accepted by the kernel, never read: fail-closed EPERM at the answer timeout" \
    "$(tprobe hello RAMPART_URL=$URL_deaf "${Z[@]}" RAMPART_FAIL_OPEN=false)" blocked $((ANSWER - 100)) $((ANSWER + SLACK))
start_server full --backlog-full
within "connect never completes (accept queue full): fail-open runs at the connect timeout" \
    "$(tprobe hello RAMPART_URL=$URL_full)" ran 900 $((1000 + SLACK))
within "connect never completes: fail-closed EPERM at the connect timeout" \
    "$(tprobe hello RAMPART_URL=$URL_full RAMPART_FAIL_OPEN=false)" blocked 900 $((1000 + SLACK))
expect "connect timeout: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: policy server did not answer in time at $URL_full and fail-open is off"

# ---- the token stays on this machine ----
# Proxy variables are ignored: the request goes straight to the server (which alone
# knows that denyme is denied), the trap behind every proxy variable hears nothing.
start_server trap
PROXIES=(http_proxy=$URL_trap HTTP_PROXY=$URL_trap https_proxy=$URL_trap HTTPS_PROXY=$URL_trap
    all_proxy=$URL_trap ALL_PROXY=$URL_trap no_proxy= NO_PROXY=)
before=$(requests "$LOG_main")
expect "proxy variables are ignored: allowed command runs, fail-closed" "$(probe hello "${M[@]}" "${PROXIES[@]}" RAMPART_FAIL_OPEN=false)" ran
expect "proxy variables are ignored: the server's deny arrives" "$(probe denyme "${M[@]}" "${PROXIES[@]}" RAMPART_FAIL_OPEN=false)" blocked
expect "proxy variables are ignored: the deny is the server's message" "$(reason)" "rampart: [ERROR] Policy denied: Destructive command blocked"
expect "proxy variables are ignored: both requests reached the server" "$(requests "$LOG_main")" $((before + 2))
expect "proxy variables are ignored: the proxy heard nothing" "$(requests "$LOG_trap")" 0

# A non-loopback address is refused before any connection: the token would travel in
# plain HTTP. A request that cannot be built refuses in enforce, fail-open or not.
REMOTE=http://10.1.2.3:9090
expect "non-loopback URL, fail-open: EPERM" "$(probe hello RAMPART_URL=$REMOTE RAMPART_TOKEN=s3cret)" blocked
expect "non-loopback URL, fail-closed: EPERM" "$(probe hello RAMPART_URL=$REMOTE RAMPART_TOKEN=s3cret RAMPART_FAIL_OPEN=false)" blocked
expect "non-loopback URL: the reason" "$(reason)" \
    "rampart: [ERROR] Policy denied: RAMPART_URL $REMOTE is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)"
err=$(RAMPART_URL=$REMOTE RAMPART_TOKEN=s3cret RAMPART_DEBUG=1 LD_PRELOAD=$LIB /usr/bin/env /bin/true 2>&1)
expect "non-loopback URL: debug says why it is not used" "$err" "rampart: [DEBUG] Library loaded
rampart: [DEBUG] URL: $REMOTE
rampart: [DEBUG] URL unusable: not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)
rampart: [DEBUG] Mode: enforce
rampart: [DEBUG] Fail-open: true
rampart: [DEBUG] Intercepted execvp: /bin/true
rampart: [DEBUG] Policy check: POST /v1/preflight/exec
rampart: [DEBUG] Decision: deny (RAMPART_URL $REMOTE is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket))
rampart: [ERROR] Policy denied: RAMPART_URL $REMOTE is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)
/usr/bin/env: ‘/bin/true’: Operation not permitted"
if command -v strace >/dev/null && strace -o /dev/null /bin/true 2>/dev/null; then
    for url in $REMOTE http://0.0.0.0:9090 http://192.0.2.2:9090 http://example.com:9090 \
        http://localhost.example.com:9090 'http://127.0.0.1:9090@10.1.2.3:80/' 'http://[::1]:9090' https://127.0.0.1:9090; do
        strace -f -e trace=socket,connect -o "$WORK/strace.out" env RAMPART_URL=$url RAMPART_TOKEN=s3cret \
            RAMPART_FAIL_OPEN=false LD_PRELOAD=$LIB /usr/bin/env /bin/true 2>"$WORK/probe.err"
        expect "$url: refused, no socket is even opened (strace)" "$(grep -c -E 'socket\(|connect\(' "$WORK/strace.out")|$(reason)" \
            "0|$(case $url in http://0.0.0.0* | http://192.0.2.2* | "$REMOTE") echo "rampart: [ERROR] Policy denied: RAMPART_URL $url is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)" ;;
                *) echo "rampart: [ERROR] Policy denied: RAMPART_URL $url is not a supported URL (use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path; no https, no host names)" ;; esac)"
    done
    strace -f -e trace=connect -o "$WORK/strace.out" env RAMPART_URL=$URL_main LD_PRELOAD=$LIB /usr/bin/env /bin/true 2>/dev/null
    expect "loopback URL: strace does see the connect (the check above can fail)" "$(grep -c "sin_port=htons(${URL_main##*:})" "$WORK/strace.out")" 1
else
    echo "skip strace checks: strace unavailable or not permitted"
fi
# The same with an address this machine really has: a server listening there with the
# token would log the request; it must log nothing.
OWN_IP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
if [[ -n "$OWN_IP" ]]; then
    start_server remote --addr "$OWN_IP" --token s3cret
    URL_remote=http://$OWN_IP:${URL_remote##*:}
    expect "a server on this machine's $OWN_IP answers a plain client (the check below can fail)" \
        "$("$PYTHON" -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1] + "/v1/preflight/exec", data=b"{\"params\":{\"command\":\"x\"}}", headers={"Authorization": "Bearer s3cret"})
print(u.build_opener(u.ProxyHandler({})).open(r, timeout=5).status)' "$URL_remote" 2>&1)" 200
    : >"$LOG_remote"
    expect "$OWN_IP (not loopback), fail-open: EPERM" "$(probe hello RAMPART_URL=$URL_remote RAMPART_TOKEN=s3cret)" blocked
    expect "$OWN_IP, fail-closed: EPERM" "$(probe hello RAMPART_URL=$URL_remote RAMPART_TOKEN=s3cret RAMPART_FAIL_OPEN=false)" blocked
    expect "$OWN_IP: the server never saw a request (nor the token)" "$(requests "$LOG_remote")" 0
else
    echo "skip own-address check: this machine has no non-loopback IPv4 address"
fi
expect "localhost is 127.0.0.1 without DNS" "$(probe denyme RAMPART_URL=${URL_main/127.0.0.1/localhost} RAMPART_FAIL_OPEN=false)" blocked
expect "localhost: the deny is the server's" "$(reason)" "rampart: [ERROR] Policy denied: Destructive command blocked"
start_server lo2 --addr 127.0.0.2
URL_lo2=http://127.0.0.2:${URL_lo2##*:}
expect "127.0.0.2 is loopback too: allow" "$(probe hello RAMPART_URL=$URL_lo2 RAMPART_FAIL_OPEN=false)" ran
expect "127.0.0.2 is loopback too: deny" "$(probe denyme RAMPART_URL=$URL_lo2 RAMPART_FAIL_OPEN=false)" blocked
expect "127.0.0.2: the deny is the server's" "$(reason)" "rampart: [ERROR] Policy denied: Destructive command blocked"

# ---- modes ----
before=$(requests "$LOG_main")
expect "monitor never blocks" "$(probe denyme "${M[@]}" RAMPART_MODE=monitor)" ran
last=$(tail -1 "$LOG_main")
if [[ "$last" == *'"enforce": false'* && "$last" != *wait_ms* ]]; then ok "monitor sends enforce:false, no wait_ms"; else fail "monitor request" "$last"; fi
before=$(requests "$LOG_main")
expect "disabled runs a denied command" "$(probe denyme "${M[@]}" RAMPART_MODE=disabled)" ran
expect "disabled sends no request at all" "$(requests "$LOG_main")" "$before"

# ---- connections kept or not ----
# A connection the library will not keep (an exec-family call, which never caches; a
# vfork child's) says `Connection: close`, so the server closes it after the answer
# rather than waking again for our close. posix_spawn's (kept alive) does not.
expect "an exec's check: runs" "$(probe hello "${M[@]}")" ran
last=$(tail -1 "$LOG_main")
if [[ "$last" == *'"connection": "close"'* ]]; then ok "an exec's check says Connection: close"; else fail "exec Connection: close" "$last"; fi
before=$(requests "$LOG_main")
env "${M[@]}" LD_PRELOAD="$LIB" "$PYTHON" -c 'import os
for _ in range(2):
    os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], os.environ), 0)' 2>/dev/null
spawns=$(tail -n +$((before + 1)) "$LOG_main" | grep -c '"via": "posix_spawn"')
closes=$(tail -n +$((before + 1)) "$LOG_main" | grep '"via": "posix_spawn"' | grep -c '"connection": "close"')
expect "posix_spawn's checks keep their connection (no Connection: close)" "$spawns $closes" "2 0"

# ---- transport variants ----
expect "unix socket: allow" "$(probe hello RAMPART_URL=$URL_unixsrv)" ran
expect "unix socket: deny" "$(probe denyme RAMPART_URL=$URL_unixsrv)" blocked
expect "token accepted" "$(probe hello RAMPART_URL=$URL_tok RAMPART_TOKEN=s3cret RAMPART_FAIL_OPEN=true)" ran
expect "Authorization: Bearer header sent" "$(tail -1 "$LOG_tok" | grep -o '"authorization": "Bearer s3cret"')" '"authorization": "Bearer s3cret"'
expect "wrong token (401) denies despite fail-open" "$(probe hello RAMPART_URL=$URL_tok RAMPART_TOKEN=nope)" blocked
expect "localhost URL" "$(probe denyme RAMPART_URL=${URL_main/127.0.0.1/localhost})" blocked

# ---- limits of re-injection ----
# A value the snapshot cannot hold whole would reach children cut or not at all: every
# exec is refused with E2BIG and one line, in every mode.
LONG=$(head -c 5000 /dev/zero | tr '\0' s)
out=$(RAMPART_SESSION=$LONG RAMPART_URL=$URL_main LD_PRELOAD=$LIB "$PYTHON" -c '
import subprocess
try:
    subprocess.run(["/bin/echo", "hello"])
except OSError as e:
    print("errno", e.errno)' 2>"$WORK/long.err")
expect "a 5000-byte RAMPART_SESSION: E2BIG, one line" "$out|$(cat "$WORK/long.err")" \
    "errno 7|rampart: [ERROR] Policy denied: the library's configuration (a RAMPART_* value over 4096 bytes, or its own path) does not fit its buffers, so it could not be passed on (E2BIG); not starting /bin/echo hello"

# ---- request contents ----
RAMPART_URL=$URL_main RAMPART_AGENT=my-agent RAMPART_SESSION=prod-deploy LD_PRELOAD=$LIB \
    /usr/bin/env /bin/echo "it's" 'a b' $'\xff' >/dev/null 2>&1
last=$(tail -1 "$LOG_main")
"$PYTHON" - "$last" <<'PY' && ok "request body fields and quoting" || fail "request body fields and quoting" "$last"
import json, os, sys
b = json.loads(sys.argv[1])["body"]
assert b["agent"] == "my-agent" and b["session"] == "prod-deploy", b
assert b["params"]["command"] == "/bin/echo 'it'\\''s' 'a b' \u00ff", b["params"]["command"]
assert b["argv"] == ["/bin/echo", "it's", "a b", "\u00ff"], b["argv"]
assert b["exe"] == "/bin/echo" and b["via"] == "execvp" and b["enforce"] is True, b
assert b["wait_ms"] == 120000 and isinstance(b["pid"], int) and isinstance(b["ppid"], int), b
assert b["cwd"] == os.getcwd(), b["cwd"]
PY
# The count of programs that ran unchecked reaches the server with the next answered
# check, and is not handed on: the checked child gets no RAMPART_UNCHECKED.
out=$(RAMPART_UNCHECKED=3 RAMPART_URL=$URL_main LD_PRELOAD=$LIB /usr/bin/env /usr/bin/env 2>&1 | grep -c '^RAMPART_UNCHECKED=')
last=$(tail -1 "$LOG_main")
expect "RAMPART_UNCHECKED=3 at load: the next preflight carries \"ran_unchecked\": 3" "$(echo "$last" | grep -o '"ran_unchecked": [0-9]*')" '"ran_unchecked": 3'
expect "RAMPART_UNCHECKED: not passed on to a checked child" "$out" 0
# A Python agent: two subprocess.run (vfork children: counted in the agent's memory) and
# one posix_spawn (counted by the agent) while the server closes every connection
# unanswered, then the server answers: that check reports all three, once.
setmode close
RAMPART_URL=$URL_main LD_PRELOAD=$LIB "$PYTHON" - "$MODE_main" >"$WORK/py-unchecked.out" 2>"$WORK/py-unchecked.err" <<'PY'
import os, subprocess, sys
subprocess.run(["/bin/true"])
subprocess.run(["/bin/true"])
os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], dict(os.environ)), 0)
with open(sys.argv[1], "w") as f:
    f.write("normal\n")
subprocess.run(["/bin/echo", "after-1"])
subprocess.run(["/bin/echo", "after-2"])
PY
expect "python agent through an outage: all ran, one WARN line" "$(tr '\n' ' ' <"$WORK/py-unchecked.out")|$(grep -c WARN "$WORK/py-unchecked.err")|$(wc -l <"$WORK/py-unchecked.err")" "after-1 after-2 |1|1"
expect "python agent: the first answered check (a vfork child's) reports \"ran_unchecked\": 3, the next nothing" \
    "$(tail -2 "$LOG_main" | sed -e 's/.*"ran_unchecked": \([0-9]*\).*/\1/' -e 's/.*after-2.*/none/' | tr '\n' ' ')" '3 none '
# The same through bash's fork children: the child's count lands in the shared page.
setmode close
RAMPART_URL=$URL_main LD_PRELOAD=$LIB bash -c "/bin/true; /bin/true; echo normal >$MODE_main; /bin/echo bash-after; /bin/echo bash-again" >/dev/null 2>"$WORK/bash-unchecked.err"
expect "bash through an outage: one WARN line" "$(grep -c WARN "$WORK/bash-unchecked.err")" 1
expect "bash: the first answered check reports \"ran_unchecked\": 2, the next nothing" \
    "$(tail -2 "$LOG_main" | sed -e 's/.*"ran_unchecked": \([0-9]*\).*/\1/' -e 's/.*bash-again.*/none/' | tr '\n' ' ')" '2 none '
setmode normal
RAMPART_URL=$URL_main LD_PRELOAD=$LIB /usr/bin/env /bin/true
expect "no unchecked programs: no ran_unchecked field" "$(tail -1 "$LOG_main" | grep -c ran_unchecked)" 0
# Commands reach the terminal through printable(): escape sequences and bidi controls
# in a denied command are shown escaped, in the [ERROR]-adjacent debug lines too.
err=$(RAMPART_URL=$URL_main RAMPART_DEBUG=1 RAMPART_DEBUG_LOADED=1 LD_PRELOAD=$LIB /usr/bin/env /bin/echo denyme $'\r\e[2Kgit status' $'\xe2\x80\xae' 2>&1 >/dev/null | head -1)
expect "printable: the Intercepted line escapes ESC, CR and bidi" "$err" 'rampart: [DEBUG] Intercepted execvp: /bin/echo denyme '"'"'\r\x1b[2Kgit status'"'"' \u{202e}'
out=$(RAMPART_URL=$URL_main LD_PRELOAD=$LIB /bin/sh -c 'echo $$; /usr/bin/env' 2>/dev/null)
sh_pid=$(echo "$out" | head -1)
expect "default session is preload-<pid of the first process>" "$(echo "$out" | grep '^RAMPART_SESSION=')" "RAMPART_SESSION=preload-$sh_pid"
for d in 2m 30s 500ms 7; do
    RAMPART_URL=$URL_main RAMPART_ASK_TIMEOUT=$d LD_PRELOAD=$LIB /usr/bin/env /bin/true
    got=$(tail -1 "$LOG_main" | grep -o '"wait_ms": [0-9]*')
    case $d in 2m) w=120000 ;; 30s) w=30000 ;; 500ms) w=500 ;; 7) w=7000 ;; esac
    expect "RAMPART_ASK_TIMEOUT=$d sends wait_ms $w" "$got" "\"wait_ms\": $w"
done

# ---- ask ----
err=$(RAMPART_URL=$URL_main RAMPART_ASK_TIMEOUT=10s LD_PRELOAD=$LIB /usr/bin/env /bin/echo askme approveme 2>&1 >/dev/null)
if [[ "$err" == "rampart: [WAIT] Waiting for approval of: /bin/echo askme approveme"* ]]; then ok "ask: one WAIT line, then approved"; else fail "ask approve" "$err"; fi
expect "ask: approved command runs" "$(probe askme-approveme "${M[@]}")" ran
expect "ask: denied by a person" "$(probe askme "${M[@]}")" blocked
expect "ask without waiting (RAMPART_ASK_TIMEOUT=0) denies" "$(probe askme "${M[@]}" RAMPART_ASK_TIMEOUT=0)" blocked
# CI=true (set by every CI system): nobody is there to ask, so an ask is refused at once
# with that reason; an explicit RAMPART_ASK_TIMEOUT makes it wait again. (The rest of
# this script runs with CI unset, so it tests the same thing on a laptop and in CI.)
err=$(CI=true RAMPART_URL=$URL_main LD_PRELOAD=$LIB /usr/bin/env /bin/echo askme 2>&1 >/dev/null)
if [[ "$err" == *"an ask, refused at once: no person to ask in CI"* && "$err" != *WAIT* ]]; then ok "CI=true: an ask is refused at once, one line says why"; else fail "CI=true ask" "$err"; fi
expect "CI=true and RAMPART_ASK_TIMEOUT=10s: the approved command runs" "$(probe askme-approveme "${M[@]}" CI=true RAMPART_ASK_TIMEOUT=10s)" ran

# ---- agents: Python, Node, bash ----
if TEST_LOG=$LOG_main TEST_LIB=$LIB RAMPART_URL=$URL_main LD_PRELOAD=$LIB "$PYTHON" "$HERE/tests/test_python.py" >"$WORK/py.out" 2>&1; then
    ok "python: $(tail -1 "$WORK/py.out")"
else
    fail "python" "$(grep -E '^FAIL|passed' "$WORK/py.out")"
fi
if command -v node >/dev/null; then
    if RAMPART_URL=$URL_main LD_PRELOAD=$LIB node "$HERE/tests/test_node.js" >"$WORK/node.out" 2>&1; then
        ok "node: $(tail -1 "$WORK/node.out")"
    else
        fail "node" "$(grep -E '^FAIL|passed' "$WORK/node.out")"
    fi
else
    echo "skip node: not installed"
fi
out=$(RAMPART_URL=$URL_main LD_PRELOAD=$LIB bash -c 'echo one && /bin/echo denyme; echo rc=$?; /bin/echo two | cat' 2>"$WORK/bash.err")
expect "bash -c chain: denied step fails with 126, the rest runs" "$(echo $out)" "one rc=126 two"
if grep -q "rampart: \[ERROR\] Policy denied: Destructive command blocked" "$WORK/bash.err"; then ok "bash -c chain: one-line reason"; else fail "bash reason" "$(cat "$WORK/bash.err")"; fi

echo "$PASS passed, $FAIL failed"
((FAIL == 0))
