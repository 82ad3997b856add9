# Rampart: `make demo` shows it working, `make test` runs every test but the concurrency
# soak, `make test-long` runs that (a few minutes).
# Everything here honours RAMPART_HOME and never touches ~/.rampart unless you `make install`.

CARGO ?= cargo
PREFIX ?= $(HOME)/.local
RAMPART_HOME ?= $(HOME)/.rampart
RAMPART := target/release/rampart

.PHONY: all build preload demo test test-long test-rust test-preload test-browser test-browser-if-chromium lint fmt bench install clean

all: build

# The rampart binary and librampart.so (preload/ is its own cargo workspace).
build: preload
	$(CARGO) build --release --workspace

preload:
	$(MAKE) -C preload release

demo: build
	./examples/demo.sh

# Every test: formatting and lints, the Rust workspace (unit tests and end-to-end tests
# against real `rampart serve` processes and the real library), then the preload
# library's own contract tests.
# The prerequisites run in this order even under `make -j`: the end-to-end tests need the
# library, and lint should fail fast before minutes of tests.
test:
	$(MAKE) lint
	$(MAKE) preload
	$(MAKE) test-rust
	$(MAKE) test-preload
	$(MAKE) test-browser-if-chromium

test-rust: preload
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

test-preload:
	$(MAKE) -C preload test

# The concurrency soak (crates/rampart-cli/tests/long.rs, minutes, so not in `make test`):
# 32 Python threads and 32 Node workers spawn for RAMPART_LONG_SECS seconds (default 30)
# under `rampart preload` and under `rampart supervise`; every spawn must be audited
# exactly once. `cargo test --all-targets` skips this binary (test = false), so it is
# linted here too.
test-long: preload
	$(CARGO) clippy -p rampart-cli --test long -- -D warnings
	$(CARGO) test -p rampart-cli --test long -- --nocapture --test-threads=1

# The dashboard in headless Debian Chromium against a real server (tests/browser/).
# .ci/run installs chromium and the npm package; `make test` skips this, loudly, without them.
test-browser: preload
	$(CARGO) build -p rampart-cli
	[ -d tests/browser/node_modules/playwright-core ] || \
		(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	cd tests/browser && RAMPART_BIN=$(CURDIR)/target/debug/rampart PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
		node --test --test-concurrency=1 dashboard.test.mjs

test-browser-if-chromium:
	@if [ -x /usr/bin/chromium ]; then $(MAKE) test-browser; \
	else echo "SKIPPED browser test: /usr/bin/chromium not installed (.ci/run installs it)"; fi

# Both workspaces: the main one and preload/ (its own workspace, so `--workspace` misses it).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) -C preload lint

fmt:
	$(CARGO) fmt --all
	cd preload && $(CARGO) fmt

# Policy evaluation micro-benchmarks (divan), then the whole-system harness in bench/,
# which writes bench/RESULTS.md. Numbers are only comparable within one run.
bench: build
	$(CARGO) bench -p rampart-policy --bench evaluate
	$(CARGO) build --release -p rampart-bench
	./target/release/rampart-bench
	./bench/where-the-time-goes.sh | tee bench/WHERE.md

install: build
	install -d $(PREFIX)/bin
	install -m 0755 $(RAMPART) $(PREFIX)/bin/rampart
	install -d $(PREFIX)/lib/rampart
	install -m 0755 preload/build/librampart.so $(PREFIX)/lib/rampart/librampart.so
	$(MAKE) -C preload install RAMPART_HOME=$(RAMPART_HOME)
	@echo "installed $(PREFIX)/bin/rampart, $(PREFIX)/lib/rampart/librampart.so and $(RAMPART_HOME)/lib/librampart.so"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; \
	  *) echo "warning: $(PREFIX)/bin is not on your PATH; add it (e.g. export PATH=\"$(PREFIX)/bin:\$$PATH\" in ~/.profile) or run $(PREFIX)/bin/rampart";; esac

clean:
	$(CARGO) clean
	cd preload && $(CARGO) clean && rm -rf build
