#!/bin/sh
# The emulated Raspberry Pi: an arm64 Debian Bookworm rootfs (the base of Raspberry Pi OS 64-bit) run
# through qemu-user-static + binfmt_misc, with its own sshd on 127.0.0.1 and a `pi` user.
#
#   scripts/pi-emulator.sh build    # once (~3 min): debootstrap + python3, venv, rsync, openssh-server
#   scripts/pi-emulator.sh start    # sshd on 127.0.0.1:$PI_PORT (default 2222); prints how to deploy
#   scripts/pi-emulator.sh stop     # ends the sshd and everything started inside the emulator
#   scripts/pi-emulator.sh status | env | shell
#
# Everything lives in $PI_HOME (default ~/.cache/edgelite/pi-emulator): rootfs/, the client key
# id_ed25519 authorised for `pi`, a known_hosts file for the emulator's host key, sshd.pid, sshd.log.
# /proc, /sys, /dev and /run are mounted inside a private mount namespace that ends with the sshd, so
# nothing stays mounted on the host. Needs root (debootstrap, chroot, mount).
set -eu

PI_HOME=${PI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/edgelite/pi-emulator}
PI_PORT=${PI_PORT:-2222}
PI_SUITE=${PI_SUITE:-bookworm}
ROOTFS=$PI_HOME/rootfs
KEY=$PI_HOME/id_ed25519
KNOWN=$PI_HOME/known_hosts
PIDFILE=$PI_HOME/sshd-$PI_PORT.pid
LOG=$PI_HOME/sshd-$PI_PORT.log
PACKAGES=python3,python3-venv,rsync,openssh-server,ca-certificates,procps

say() { echo "pi-emulator: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mount need it)"; }

host_tools() {
  set --  # the missing packages, one argument each
  command -v debootstrap >/dev/null 2>&1 || set -- "$@" debootstrap
  [ -x /usr/bin/qemu-aarch64-static ] || set -- "$@" qemu-user-static
  command -v update-binfmts >/dev/null 2>&1 || set -- "$@" binfmt-support
  if [ $# -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "install $* (Debian packages) first"
    say "apt-get install $*"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

# arm64 ELF binaries run through qemu: binfmt_misc mounted and the qemu-aarch64 entry enabled, with
# the F flag (the interpreter is opened once on the host, so it works inside the chroot).
binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --import qemu-aarch64 >/dev/null
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt qemu-aarch64 is registered but disabled"
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
    say "warning: qemu-aarch64 binfmt lacks the F flag; binaries inside the chroot may not start"
}

# The Debian mirror apt is configured with (deb822 .sources or one-line sources.list); PI_MIRROR wins.
mirror() {
  if [ -n "${PI_MIRROR:-}" ]; then echo "$PI_MIRROR"; return; fi
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
      /^[[:space:]]*$/ { if (uri != "" && suites ~ /(^| )'"$PI_SUITE"'( |$)/ && uri !~ /security/) { print uri; exit } uri=""; suites=""; next }
      /^URIs:/ { uri=$2 } /^Suites:/ { $1=""; suites=$0 }
      END { if (uri != "" && suites ~ /(^| )'"$PI_SUITE"'( |$)/ && uri !~ /security/) print uri }' | head -n 1)
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' | head -n 1)
  fi
  [ -n "$m" ] || die "no Debian mirror in /etc/apt/sources.list*; set PI_MIRROR=URL"
  echo "$m"
}

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

build() {
  need_root
  if [ -e "$ROOTFS/.edgelite-ready" ]; then say "rootfs ready: $ROOTFS"; return 0; fi
  host_tools
  binfmt
  mkdir -p "$PI_HOME"
  url=$(mirror)
  partial=$PI_HOME/rootfs.partial
  rm -rf "$partial"
  say "debootstrap --arch=arm64 --variant=minbase $PI_SUITE from $url (a few minutes)"
  start=$(date +%s)
  debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$PI_SUITE" "$partial" "$url" \
    >"$PI_HOME/debootstrap.log" 2>&1 || { tail -n 20 "$PI_HOME/debootstrap.log" >&2; die "debootstrap failed (log: $PI_HOME/debootstrap.log)"; }
  rm -rf "$ROOTFS"
  mv "$partial" "$ROOTFS"
  configure
  touch "$ROOTFS/.edgelite-ready"
  say "rootfs built in $(( $(date +%s) - start )) s: $ROOTFS ($(du -sm "$ROOTFS" | cut -f1) MB)"
}

configure() {
  [ -e "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C edgelite-pi-emulator -f "$KEY"
  echo "edgelite-pi" >"$ROOTFS/etc/hostname"
  # a Pi's first user: in the video group (cameras), key login only; '*' = no password but not locked
  in_root id pi >/dev/null 2>&1 || in_root useradd -m -s /bin/bash -G video pi
  in_root usermod -p '*' pi
  install -d -m 700 "$ROOTFS/home/pi/.ssh"
  install -m 600 "$KEY.pub" "$ROOTFS/home/pi/.ssh/authorized_keys"
  in_root chown -R pi:pi /home/pi/.ssh
  in_root ssh-keygen -A >/dev/null
  : >"$ROOTFS/home/pi/.hushlogin"
  sshd_conf
}

# Written at every start, so an existing rootfs picks up changes.
# QEMU_CPU=cortex-a72: emulate a Pi 4's CPU. With qemu's default ("max") CPU, XNNPACK picks int8
# kernels for extensions a Pi 4 lacks, and qemu 7.2 computes them wrongly (every frame "red").
sshd_conf() {
  mkdir -p "$ROOTFS/etc/ssh/sshd_config.d"
  cat >"$ROOTFS/etc/ssh/sshd_config.d/edgelite-emulator.conf" <<'EOF'
# edgelite pi-emulator: key login on the loopback only
ListenAddress 127.0.0.1
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
SetEnv QEMU_CPU=cortex-a72
EOF
}

# qemu-user shows arm64 programs the HOST's /proc/cpuinfo (x86 here); LiteRT's cpuinfo library then
# segfaults creating an interpreter. A Raspberry Pi 4's cpuinfo (Cortex-A72), one entry per host CPU
# (what /sys/devices/system/cpu lists), is what a real Pi shows.
pi_cpuinfo() {
  n=$(getconf _NPROCESSORS_CONF 2>/dev/null || echo 4)
  i=0
  while [ "$i" -lt "$n" ]; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
    i=$((i + 1))
  done
  printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1 (emulated: qemu-aarch64)\n'
}

running() { [ -e "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  need_root
  [ -e "$ROOTFS/.edgelite-ready" ] || die "no rootfs yet: run \`$0 build\` (or \`make pi-emulator\`)"
  binfmt
  if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PI_PORT"; print_env; return 0; fi
  pi_cpuinfo >"$PI_HOME/cpuinfo"
  sshd_conf
  # a private mount namespace: /proc, /sys, /dev, /run inside the rootfs vanish with its last process;
  # the inner sh expands $1..$3 (its arguments), hence the single quotes
  # shellcheck disable=SC2016
  QEMU_CPU=cortex-a72 setsid unshare --mount --propagation private -- /bin/sh -c '
    R=$1; P=$2
    mount -t proc proc "$R/proc"
    mount --bind "$3" "$R/proc/cpuinfo"
    mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs -o mode=755 tmpfs "$R/run"
    mkdir -p "$R/run/sshd" && chmod 755 "$R/run/sshd"
    exec chroot "$R" /usr/sbin/sshd -D -e -p "$P"
  ' pi-emulator "$ROOTFS" "$PI_PORT" "$PI_HOME/cpuinfo" </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  i=0
  until ssh -q -p "$PI_PORT" -i "$KEY" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new \
        -o UserKnownHostsFile="$KNOWN" -o ConnectTimeout=20 pi@127.0.0.1 true 2>/dev/null; do
    i=$((i + 1))
    if ! running || [ $i -ge 60 ]; then cat "$LOG" >&2; stop >/dev/null 2>&1 || true; die "sshd did not come up"; fi
    sleep 1
  done
  say "running: sshd pid $(cat "$PIDFILE") on 127.0.0.1:$PI_PORT ($(in_root uname -m), $(in_root python3 -V))"
  print_env
}

# every process of the emulator: those in the sshd's mount namespace (services started over ssh included)
emulator_pids() {
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
  ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
  done
  return 0
}

stop() {
  if ! running; then rm -f "$PIDFILE"; say "not running on port $PI_PORT"; return 0; fi
  pids=$(emulator_pids)
  # shellcheck disable=SC2086  # one pid a word
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; fi
  i=0
  while running && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
  pids=$(emulator_pids)
  # shellcheck disable=SC2086  # one pid a word
  if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  say "stopped (port $PI_PORT)"
}

print_env() {
  echo "DEVICE=pi@127.0.0.1:$PI_PORT"
  echo "IDENTITY=$KEY"
  echo "KNOWN_HOSTS=$KNOWN"
  echo "ROOTFS=$ROOTFS"
}

status() {
  if [ -e "$ROOTFS/.edgelite-ready" ]; then say "rootfs: $ROOTFS"; else say "rootfs: not built"; fi
  if running; then say "sshd: pid $(cat "$PIDFILE") on 127.0.0.1:$PI_PORT"; else say "sshd: not running on port $PI_PORT"; return 1; fi
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  up) build; start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  shell) exec ssh -p "$PI_PORT" -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN" pi@127.0.0.1 ;;
  *) echo "usage: $0 build|start|up|stop|status|env|shell   (PI_HOME=$PI_HOME PI_PORT=$PI_PORT)" >&2; exit 2 ;;
esac
