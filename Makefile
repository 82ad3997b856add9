# Rampart: `make demo` shows it working, `make test` runs every test.
# Everything here honours RAMPART_HOME and never touches ~/.rampart unless you `make install`.

CARGO ?= cargo
PREFIX ?= $(HOME)/.local
RAMPART := target/release/rampart

.PHONY: all build demo test lint fmt bench install clean

all: build

build:
	$(CARGO) build --release --workspace

demo: build
	./examples/demo.sh

# Every test, plus the formatting and lint checks CI enforces.
test: lint
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Policy evaluation micro-benchmarks (divan), then the whole-system harness in bench/,
# which writes bench/RESULTS.md. Numbers are only comparable within one run.
bench:
	$(CARGO) bench -p rampart-policy --bench evaluate
	$(CARGO) build --release -p rampart-cli -p rampart-bench
	./target/release/rampart-bench

install: build
	install -d $(PREFIX)/bin
	install -m 0755 $(RAMPART) $(PREFIX)/bin/rampart
	@echo "installed $(PREFIX)/bin/rampart"

clean:
	$(CARGO) clean
