# The whole set-up: `make demo` and `make test`. Cargo fetches every crate the project needs.
CARGO ?= cargo

.PHONY: demo test sim lint fmt build release clean

# A primary, a secondary and its secondary on loopback, in one process; prints the tree.
demo:
	$(CARGO) run --locked --quiet -- demo

test:
	$(CARGO) test --locked

# The seeded simulation of the tree's protocol (the real link sessions over a simulated
# network with drops, duplicates, reordering, crashes and store failures), in release mode.
# Ends with "N seeds passed", or names the first failing seed and how to replay it.
# `make test` runs 60 seeds; CANOPY_SIM_FIRST=K starts at seed K.
SEEDS ?= 1000
sim:
	CANOPY_SIM_SEEDS=$(SEEDS) $(CARGO) test --locked --release --lib \
		sync::sim::checks::a_tree_of_servers_converges_whatever_the_faults -- --nocapture --quiet

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
