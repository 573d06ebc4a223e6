# The whole set-up: `make demo` and `make test`. Cargo fetches every crate the project needs.
CARGO ?= cargo

.PHONY: demo test sim chaos lint fmt build release clean

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

# Chaos, as processes (tests/chaos/): a 3-tier tree of `canopy serve` processes with a virtual
# server and `canopy agent --simulate` fleets on loopback, every link through a UDP relay that
# drops, delays, duplicates and reorders datagrams, servers and fleets killed with SIGKILL and
# restarted on a seeded schedule while group tasks are created, edited and started; then the
# checks. In release mode; prints one line per seed, names each failing seed with its replay.
# `make test` runs one short seed. CANOPY_CHAOS_FIRST=K starts at seed K; DEVICES (per
# server) and SECS (how long the faults last) size each seed.
DEVICES ?= 40
SECS ?= 30
chaos: SEEDS = 20
chaos:
	CANOPY_CHAOS_SEEDS=$(SEEDS) CANOPY_CHAOS_DEVICES=$(DEVICES) CANOPY_CHAOS_SECS=$(SECS) \
		$(CARGO) test --locked --release --test chaos -- --nocapture --quiet

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
