#!/bin/sh
# Follows README "Operating" on a fresh Debian under a running systemd: a Debian root made by
# debootstrap (kept in target/systemd-check/root between runs), booted with systemd-nspawn
# (systemd as PID 1, no network but its own loopback), the package installed with dpkg,
# certificates issued, [metrics] turned on, the first administrator bootstrapped as the user
# canopy, `systemctl enable --now canopy`, the metrics scraped, a login, an agent under
# canopy-agent.service approved and a command task run on it, a backup and a compaction task
# under the unit's sandbox, a clean stop. Fails on the first step that does not do what the
# README says. `make systemd-check` runs it as root; `make test` does not (it boots a
# container and fetches Debian from its mirror).
#
# Usage: packaging/systemd-check.sh PACKAGE.deb
set -eu

deb=$(realpath "$1")
work=$(realpath -m target/systemd-check)
root=$work/root
machine=canopy-check-$$
mkdir -p "$work"

if [ ! -x "$root/usr/lib/systemd/systemd" ]; then
	rm -rf "$root"
	debootstrap --include=systemd,systemd-sysv,dbus,curl,ca-certificates,sudo \
		bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log"; exit 1; }
fi
cp "$deb" "$root/root/canopy.deb"
echo canopy-check >"$root/etc/hostname"
grep -q canopy-check "$root/etc/hosts" ||
	printf '127.0.1.1 canopy-check\n127.0.0.1 primary.example.org\n' >>"$root/etc/hosts"

# No machined or D-Bus on the host is needed: no registration, no scope unit.
systemd-nspawn -D "$root" -b --console=passive --private-network --register=no --keep-unit \
	--ephemeral --machine="$machine" >"$work/boot.log" 2>&1 &
nspawn=$!
trap 'kill $nspawn 2>/dev/null; wait $nspawn 2>/dev/null' EXIT

# The container's PID 1, once it is systemd.
init=""
for _ in $(seq 1 100); do
	for pid in $(pgrep -P "$nspawn" 2>/dev/null); do
		[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd ] && init=$pid
	done
	[ -n "$init" ] && break
	sleep 0.2
done
[ -n "$init" ] || { cat "$work/boot.log"; echo "the container did not boot"; exit 1; }
in_container() {
	nsenter -t "$init" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}
for _ in $(seq 1 60); do
	state=$(in_container systemctl is-system-running 2>/dev/null || true)
	case $state in running | degraded) break ;; esac
	sleep 1
done
echo "systemd in the container: $state"

in_container sh -eu <<'EOF'
step() { echo "== $*"; }
cd /root
step "install the package"
dpkg -i canopy.deb >/dev/null
step "certificates, as README Operating says"
canopy pki init --dir certs >/dev/null
canopy pki issue --dir certs --name primary --san primary.example.org >/dev/null
install -m 0644 certs/ca.pem /etc/canopy/certs/ca.pem
install -m 0644 certs/primary.pem /etc/canopy/certs/server.pem
install -o root -g canopy -m 0640 certs/primary.key /etc/canopy/certs/server.key
step "[metrics] uncommented"
sed -i 's/^# \[metrics\]/[metrics]/; s/^# listen = "127.0.0.1:13298"/listen = "127.0.0.1:13298"/' \
	/etc/canopy/canopy.toml
step "the first administrator, as the user canopy"
echo "a-long-admin-password" |
	sudo -u canopy canopy account bootstrap --config /etc/canopy/canopy.toml --user admin \
		--password-stdin
step "systemctl enable --now canopy"
systemctl enable --now canopy 2>/dev/null
sleep 2
systemctl is-active canopy
step "metrics"
curl -sf http://127.0.0.1:13298/metrics | grep -q '^canopy_devices{server="primary",state="known"} 0'
step "login"
echo "a-long-admin-password" | canopy login --server primary.example.org:13000 --ca certs/ca.pem \
	--server-name primary --user admin --password-stdin >/dev/null
step "an agent under canopy-agent.service, approved"
sed -i 's/^server = .*/server = "primary.example.org:13000"/; s/^# server_name = "primary"/server_name = "primary"/' \
	/etc/canopy/agent.toml
systemctl enable --now canopy-agent 2>/dev/null
for _ in $(seq 1 50); do canopy device list | grep -q pending && break; sleep 0.2; done
canopy device approve canopy-check --group "Managed devices"
step "a command task, waited for"
canopy task create --name id --type command --program /usr/bin/id --group "Managed devices" >/dev/null
canopy task start id --wait >/dev/null 2>&1
canopy task results id --details | grep -q "uid=0(root)"
step "a backup and a compaction under the sandbox"
canopy task create --name backup --type backup --server >/dev/null
canopy task start backup --wait >/dev/null 2>&1
ls /var/lib/canopy/backups/canopy-*.redb >/dev/null
canopy task create --name compact --type maintenance --server >/dev/null
canopy task start compact --wait >/dev/null 2>&1
step "metrics moved"
curl -sf http://127.0.0.1:13298/metrics | grep -q '^canopy_runs{server="primary",state="completed"} 3'
step "a clean stop"
systemctl stop canopy
journalctl -u canopy --no-pager | grep -q "Deactivated successfully"
if journalctl --no-pager | grep -E "canopy\[[0-9]+\]" | grep -qiE "seccomp|operation not permitted|permission denied"; then
	journalctl --no-pager | grep -E "canopy\[[0-9]+\]" | grep -iE "seccomp|operation not permitted|permission denied"
	exit 1
fi
systemd-analyze security canopy --no-pager | tail -1
EOF
echo "README Operating followed under systemd: every step did what it says"
