# The whole set-up: `make demo` and `make test`. Cargo fetches every crate the project needs.
CARGO ?= cargo

.PHONY: demo test lint fmt build release clean

# A primary, a secondary and its secondary on loopback, in one process; prints the tree.
demo:
	$(CARGO) run --locked --quiet -- demo

test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

clean:
	$(CARGO) clean
