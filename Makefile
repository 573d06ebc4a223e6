# The whole set-up: `make demo` and `make test`. Cargo fetches every crate the project needs.
CARGO ?= cargo

.PHONY: demo demo-serve screenshots test test-deps sim chaos lint fmt build release deb systemd-check clean fuzz fuzz-tools fuzz-seeds fuzz-cmin

# A primary, a secondary and its secondary on loopback, in one process; prints the tree.
demo:
	$(CARGO) run --locked --quiet -- demo

# The same tree kept running, its primary serving the web console (printed: the address,
# the account and the CA to trust) until Ctrl-C.
demo-serve:
	$(CARGO) run --locked --quiet -- demo --serve

test: test-deps
	$(CARGO) test --locked

# What the tests need from Debian, installed when missing: the PAM and NSS test wrappers that
# tests/accounts.rs preloads into real agents, so that tasks run under a test account without
# touching the machine's own accounts; and for tests/package.rs, which builds the package and
# installs it into a temporary root: dpkg-dev (dpkg-shlibdeps, the package's Depends), binutils
# (strip), passwd (useradd, run by the package's postinst), fakeroot (that install, when the
# tests do not run as root) and systemd (systemd-analyze verify and security, on the units;
# the test needs only the tool, not systemd running); and chromium with chromium-driver
# (/usr/bin/chromium, /usr/bin/chromedriver), the headless browser that the web console's
# tests drive over WebDriver (tests/common/browser.rs, tested by tests/browser.rs).
TEST_PACKAGES = libpam-wrapper libnss-wrapper dpkg-dev binutils passwd fakeroot systemd \
	chromium chromium-driver
test-deps:
	@dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -q && \
		$$sudo apt-get install -y -q --no-install-recommends $(TEST_PACKAGES); }

# The README's screenshots of the web console, taken by tests/console.rs and
# tests/console_properties.rs in headless Chromium.
screenshots: test-deps
	$(CARGO) test --locked --test console an_administrator
	$(CARGO) test --locked --test console_properties an_administrator_changes
	cp target/screenshots/console-tasks.png target/screenshots/console-statistics.png \
		target/screenshots/console-schedule.png docs/

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

# Fuzzing (README, "Fuzzing"): each `cargo fuzz` target of fuzz/fuzz_targets/ for FUZZ_SECONDS
# on the nightly toolchain, from the committed corpus (fuzz/corpus/TARGET, read only) and the
# one earlier runs grew (fuzz/work/corpus/TARGET, not committed). A failing input lands in
# fuzz/artifacts/TARGET/ and stops the run. `make fuzz FUZZ_TARGETS=hello` runs one target.
# `make test` replays fuzz/corpus/ on stable (tests/fuzz_corpus.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs)))
FUZZ_FLAGS ?= --release --debug-assertions --sanitizer none
FUZZ_ARGS ?= -timeout=10 -rss_limit_mb=2048
NIGHTLY ?= nightly
fuzz: fuzz-tools
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/corpus/$$target fuzz/corpus/$$target || exit 1; \
		echo "== $$target: $(FUZZ_SECONDS) s"; \
		$(CARGO) +$(NIGHTLY) fuzz run $(FUZZ_FLAGS) $$target \
			fuzz/work/corpus/$$target fuzz/corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) || exit 1; \
	done

# What `make fuzz` needs: the nightly toolchain and cargo-fuzz, installed when missing.
fuzz-tools:
	@rustup run $(NIGHTLY) rustc --version >/dev/null 2>&1 || \
		rustup toolchain install $(NIGHTLY) --profile minimal
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

# Writes the seed corpus (fuzz/corpus/TARGET/seed-*) again from `canopy::fuzzing::seeds`,
# after a message, a stored value or a config example changed shape.
fuzz-seeds:
	CANOPY_FUZZ_WRITE_SEEDS=1 $(CARGO) test --locked --test fuzz_corpus -- \
		--exact the_committed_seeds_are_the_generated_ones

# Merges what runs found (fuzz/work/corpus) into fuzz/corpus: only inputs that add coverage.
fuzz-cmin: fuzz-tools
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/corpus/$$target || exit 1; \
		$(CARGO) +$(NIGHTLY) fuzz run $(FUZZ_FLAGS) $$target fuzz/corpus/$$target \
			fuzz/work/corpus/$$target -- -merge=1 || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

# The Debian package (README, "Installing from the package"): the release binary, staged and
# built with dpkg-deb by packaging/deb/build.sh (tests/package.rs builds and installs it the
# same way). Prints the .deb's path: target/debian/canopy_VERSION_ARCH.deb.
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb:
	$(CARGO) build --locked --release
	packaging/deb/build.sh target/release/canopy $(VERSION) target/debian

# README "Operating" followed on a fresh Debian booted with systemd-nspawn (systemd as PID 1),
# with the package `make deb` built: packaging/systemd-check.sh says each step. As root; it
# fetches Debian once with debootstrap (kept in target/systemd-check/). Not part of `make test`.
systemd-check: deb
	@command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || { \
		apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap systemd-container; }
	packaging/systemd-check.sh target/debian/canopy_$(VERSION)_$$(dpkg --print-architecture).deb

clean:
	$(CARGO) clean
