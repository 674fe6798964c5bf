#!/bin/sh
# The emulated Raspberry Pi as a whole machine: an arm64 Debian VM (the base of Raspberry Pi OS 64-bit)
# under qemu-system-aarch64 -M virt, with systemd as PID 1, a V4L2 camera (the kernel's `vivid` module,
# /dev/video0), a `pi` user with key-only SSH and passwordless sudo.
#
# Two axes, as users flash them:
#   PI_OS=trixie   (default: Raspberry Pi OS 13, Python 3.13, apt numpy 2.2, kernel 6.12) | bookworm (12: 3.11, 1.24, 6.1)
#   PI_CPU=cortex-a76 (Pi 5: dot-product int8 kernels; trixie's default) | cortex-a72 (Pi 4; bookworm's default)
# One image per OS (the userland does not depend on the CPU model, which is a boot flag).
#
#   scripts/pi-vm.sh build     # once (see README: ~15 min here): debootstrap + kernel + initrd -> base.img
#   scripts/pi-vm.sh start     # boot a clean copy-on-write overlay; SSH on 127.0.0.1:$PI_VM_PORT
#   scripts/pi-vm.sh stop      # power the VM off (the overlay, and all it wrote, is thrown away)
#   scripts/pi-vm.sh cut       # a power cut: qemu killed -9 (the guest's unflushed page cache is lost), the overlay kept
#   scripts/pi-vm.sh boot      # power on again: boot the overlay as the last run (or a cut) left it
#   scripts/pi-vm.sh ssh [CMD] | status | env
#
# Everything lives in $PI_VM_HOME (default ~/.cache/edgelite/pi-vm): id_ed25519 (the client key authorised for
# `pi`, shared by the images) and per OS in $PI_VM_HOME/$PI_OS: base.img (the root disk, read-only),
# vmlinuz + initrd.img (direct kernel boot), host_key.pub
# (the guest's SSH host key: known_hosts is written from it, nothing is accepted blindly), and per port:
# overlay-PORT.qcow2, qemu-PORT.pid, console-PORT.log.
#
# Why it builds faster than `debootstrap --include=linux-image-arm64`: the kernel .deb is downloaded
# with the host's apt (a private arm64 apt state under $PI_VM_HOME/apt, the host's dpkg is untouched)
# and unpacked with dpkg-deb -x; the initrd is a busybox one made here on the host (virtio + ext4
# modules, ordered by the host's modprobe --show-depends). No mkinitramfs runs under emulation.
#
# Network: qemu user-mode with restrict=on: the guest reaches nothing; the only way in is the hostfwd
# of SSH (127.0.0.1:$PI_VM_PORT -> 22) and of the preview (127.0.0.1:$PI_VM_HTTP -> 8080). With
# PI_VM_BROKER=PORT the guest's 10.0.2.100:1883 also reaches 127.0.0.1:PORT on the host (an MQTT broker the
# tests start): qemu's guestfwd runs scripts/tcp-relay.py once per connection; nothing else is reachable.
# PI_VM_ARCH=amd64 builds/boots the same userland as an x86_64 guest under KVM (when arm64 is too slow).
set -eu

PI_VM_HOME=${PI_VM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/edgelite/pi-vm}
PI_VM_PORT=${PI_VM_PORT:-2230}
PI_VM_HTTP=${PI_VM_HTTP:-8088}
PI_VM_MEM=${PI_VM_MEM:-2048}
PI_VM_SMP=${PI_VM_SMP:-2}
PI_VM_ARCH=${PI_VM_ARCH:-arm64}
PI_OS=${PI_OS:-trixie}
PI_VM_MIRROR=${PI_VM_MIRROR:-http://deb.debian.org/debian}
case "$PI_OS" in
  trixie) PI_CPU=${PI_CPU:-cortex-a76} ;;
  bookworm) PI_CPU=${PI_CPU:-cortex-a72} ;;
  *) echo "pi-vm: error: PI_OS=$PI_OS: trixie or bookworm" >&2; exit 2 ;;
esac
case "$PI_CPU" in
  cortex-a76|cortex-a72) ;;
  *) echo "pi-vm: error: PI_CPU=$PI_CPU: cortex-a76 (Pi 5) or cortex-a72 (Pi 4)" >&2; exit 2 ;;
esac
H=$PI_VM_HOME/$PI_OS
[ "$PI_VM_ARCH" = arm64 ] || H=$PI_VM_HOME/$PI_OS-$PI_VM_ARCH
KEY=$PI_VM_HOME/id_ed25519
ROOTFS=$H/rootfs.partial
READY=$H/image.ready
PIDFILE=$H/qemu-$PI_VM_PORT.pid
OVERLAY=$H/overlay-$PI_VM_PORT.qcow2
CONSOLE=$H/console-$PI_VM_PORT.log
KNOWN=$H/known_hosts-$PI_VM_PORT
PACKAGES=systemd-sysv,udev,kmod,dbus,openssh-server,sudo,python3,python3-venv,python3-numpy,python3-opencv,v4l-utils,rsync,ca-certificates,procps,iproute2
INITRD_MODULES="virtio_pci virtio_blk ext4 crc32c_generic"

say() { echo "pi-vm: $*" >&2; }
die() { say "error: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and binfmt_misc need it)"; }

case "$PI_VM_ARCH" in
  arm64) QEMU=qemu-system-aarch64; QPKG=qemu-system-arm; CONSOLE_TTY=ttyAMA0 ;;
  amd64) QEMU=qemu-system-x86_64; QPKG=qemu-system-x86; CONSOLE_TTY=ttyS0 ;;
  *) die "PI_VM_ARCH=$PI_VM_ARCH: arm64 or amd64" ;;
esac

host_tools() {
  missing=""
  command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
  command -v "$QEMU" >/dev/null 2>&1 || missing="$missing $QPKG"
  command -v qemu-img >/dev/null 2>&1 || missing="$missing qemu-utils"
  command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
  command -v depmod >/dev/null 2>&1 || missing="$missing kmod"
  command -v mke2fs >/dev/null 2>&1 || missing="$missing e2fsprogs"
  if [ "$PI_VM_ARCH" = arm64 ]; then
    [ -x /usr/bin/qemu-aarch64-static ] || missing="$missing qemu-user-static"
    command -v update-binfmts >/dev/null 2>&1 || missing="$missing binfmt-support"
  fi
  if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || die "install$missing (Debian packages) first"
    say "apt-get install$missing"
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086 # one package a word
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
}

# arm64 ELF binaries run through qemu-user during debootstrap's second stage
binfmt() {
  [ "$PI_VM_ARCH" = arm64 ] || return 0
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --import qemu-aarch64 >/dev/null
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt qemu-aarch64 is registered but disabled"
}

# apt for the guest's architecture with its own state: the host's dpkg and sources stay as they are
guest_apt() {
  A=$H/apt
  if [ ! -e "$A/apt.conf" ]; then
    mkdir -p "$A/etc/apt/apt.conf.d" "$A/etc/apt/preferences.d" "$A/etc/apt/sources.list.d" \
      "$A/state/lists/partial" "$A/cache/archives/partial" "$A/debs"
    : >"$A/state/status"
    cat >"$A/apt.conf" <<EOF
APT::Architecture "$PI_VM_ARCH";
APT::Architectures { "$PI_VM_ARCH"; };
Dir::Etc "$A/etc/apt";
Dir::State "$A/state";
Dir::State::status "$A/state/status";
Dir::Cache "$A/cache";
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $PI_VM_MIRROR $PI_OS main" \
      >"$A/etc/apt/sources.list"
  fi
  APT_CONFIG=$A/apt.conf "$@"
}

# linux-image-<ver>-<arch> and busybox-static as files: vmlinuz, modules (depmod'ed here), initrd.img
kernel() {
  if [ -e "$H/kernel/.done" ]; then return 0; fi
  guest_apt apt-get update -qq
  pkg=$(guest_apt apt-cache depends "linux-image-$PI_VM_ARCH" | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$pkg" ] || die "no linux-image-$PI_VM_ARCH in $PI_VM_MIRROR $PI_OS"
  rm -rf "$H/apt/debs" "$H/kernel" && mkdir -p "$H/apt/debs" "$H/kernel"
  say "apt-get download $pkg busybox-static ($PI_VM_ARCH, on the host)"
  (cd "$H/apt/debs" && guest_apt apt-get download -qq "$pkg" busybox-static)
  dpkg-deb -x "$H/apt/debs/$pkg"_*.deb "$H/kernel"
  # trixie's kernel package ships /usr/lib/modules (merged /usr); the host's depmod -b looks in lib/modules
  if [ -d "$H/kernel/usr/lib/modules" ] && [ ! -d "$H/kernel/lib/modules" ]; then
    mkdir -p "$H/kernel/lib" && mv "$H/kernel/usr/lib/modules" "$H/kernel/lib/modules"
  fi
  mkdir -p "$H/busybox" && dpkg-deb -x "$H/apt/debs"/busybox-static_*.deb "$H/busybox"
  kver=$(ls "$H/kernel/lib/modules")
  depmod -b "$H/kernel" "$kver"
  grep -q '^CONFIG_VIDEO_VIVID=[my]' "$H/kernel/boot/config-$kver" || die "$pkg has no vivid (CONFIG_VIDEO_VIVID)"
  cp "$H/kernel/boot/vmlinuz-$kver" "$H/vmlinuz"
  initrd "$kver"
  echo "$kver" >"$H/kernel/.done"
}

initrd() {
  kver=$1
  t=$H/initrd.tree
  rm -rf "$t" && mkdir -p "$t/bin" "$t/dev" "$t/proc" "$t/sys" "$t/newroot" "$t/modules"
  # bookworm ships /bin/busybox, trixie /usr/bin/busybox
  for b in "$H/busybox/bin/busybox" "$H/busybox/usr/bin/busybox"; do [ -e "$b" ] && cp "$b" "$t/bin/busybox"; done
  [ -e "$t/bin/busybox" ] || die "no busybox binary in busybox-static"
  : >"$t/modules/order"
  for m in $INITRD_MODULES; do
    modprobe -d "$H/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}' | while read -r f; do
      b=$(basename "$f" .xz)  # trixie's modules are .ko.xz: busybox's insmod takes them uncompressed
      grep -qx "$b" "$t/modules/order" && continue
      case "$f" in *.xz) xz -dc "$f" >"$t/modules/$b" ;; *) cp "$f" "$t/modules/$b" ;; esac
      echo "$b" >>"$t/modules/order"
    done
  done
  cat >"$t/init" <<'EOF'
#!/bin/busybox sh
# edgelite pi-vm initrd: load virtio + ext4, mount /dev/vda, hand over to systemd
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; sh; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
  chmod 755 "$t/init"
  (cd "$t" && find . | cpio -o -H newc --quiet | gzip -1) >"$H/initrd.img"
  rm -rf "$t"
}

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

rootfs() {
  if [ -e "$ROOTFS/.debootstrap-done" ]; then return 0; fi
  rm -rf "$ROOTFS"
  say "debootstrap --arch=$PI_VM_ARCH --variant=minbase $PI_OS (emulated; the long part: ~6-15 min)"
  debootstrap --arch="$PI_VM_ARCH" --variant=minbase --include="$PACKAGES" "$PI_OS" "$ROOTFS" "$PI_VM_MIRROR" \
    >"$H/debootstrap.log" 2>&1 || { tail -n 20 "$H/debootstrap.log" >&2; die "debootstrap failed (log: $H/debootstrap.log)"; }
  touch "$ROOTFS/.debootstrap-done"
}

# Host-side edits of the tree (no emulation), then the pi user through the guest's own useradd.
configure() {
  R=$ROOTFS
  kver=$(cat "$H/kernel/.done")
  rm -rf "$R/usr/lib/modules/$kver" && mkdir -p "$R/usr/lib/modules"
  cp -a "$H/kernel/lib/modules/$kver" "$R/usr/lib/modules/$kver"
  echo edgelite-pi >"$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tedgelite-pi\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
  echo '/dev/vda / ext4 defaults,noatime 0 0' >"$R/etc/fstab"
  # the camera: vivid with one video-capture node (a webcam input) -> /dev/video0, loaded at boot
  echo vivid >"$R/etc/modules-load.d/edgelite-camera.conf"
  echo 'options vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0' >"$R/etc/modprobe.d/edgelite-vivid.conf"
  # network: qemu's user net, static, no DNS (the guest reaches nothing but its forwarded ports)
  cat >"$R/etc/systemd/network/10-qemu.network" <<'EOF'
[Match]
Name=e*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  systemctl --root="$R" enable systemd-networkd.service >/dev/null 2>&1
  systemctl --root="$R" mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
  systemctl --root="$R" set-default multi-user.target >/dev/null 2>&1
  # no serial login prompt: the console only logs the boot
  systemctl --root="$R" mask serial-getty@$CONSOLE_TTY.service >/dev/null 2>&1 || true
  # journald keeps the journal across reboots (the reboot test reads the service's log after one)
  mkdir -p "$R/var/log/journal"
  # sshd: key login only; the host keys were made by openssh-server's postinst
  cat >"$R/etc/ssh/sshd_config.d/edgelite-pi-vm.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
EOF
  cp "$R/etc/ssh/ssh_host_ed25519_key.pub" "$H/host_key.pub"
  # the pi user, as Raspberry Pi OS makes its first user: video (cameras), adm (journal), sudo without password
  in_root id pi >/dev/null 2>&1 || in_root useradd -m -s /bin/bash -G video,adm,sudo,systemd-journal pi
  in_root usermod -p '*' pi
  echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$R/etc/sudoers.d/010_pi-nopasswd"
  chmod 440 "$R/etc/sudoers.d/010_pi-nopasswd"
  [ -e "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C edgelite-pi-vm -f "$KEY"
  install -d -m 700 "$R/home/pi/.ssh"
  install -m 600 "$KEY.pub" "$R/home/pi/.ssh/authorized_keys"
  in_root chown -R pi:pi /home/pi/.ssh
  : >"$R/home/pi/.hushlogin"
  rm -rf "$R/var/cache/apt/archives"/*.deb "$R/var/lib/apt/lists"/* "$R/.debootstrap-done.size"
}

build() {
  need_root
  if [ -e "$READY" ]; then say "image ready: $H/base.img ($(cat "$READY"))"; return 0; fi
  host_tools
  binfmt
  mkdir -p "$H"
  migrate_old_cache
  start=$(date +%s)
  kernel
  t_kernel=$(( $(date +%s) - start ))
  rootfs
  t_rootfs=$(( $(date +%s) - start - t_kernel ))
  configure
  mb=$(du -sm "$ROOTFS" | cut -f1)
  size=$(( mb + 1536 ))
  rm -f "$H/base.img.partial"
  say "mke2fs -d: ${size} MB ext4 root disk from the ${mb} MB tree"
  mke2fs -q -t ext4 -L edgelite-pi -d "$ROOTFS" -E root_owner=0:0 "$H/base.img.partial" "${size}M"
  chmod 444 "$H/base.img.partial"
  mv -f "$H/base.img.partial" "$H/base.img"
  secs=$(( $(date +%s) - start ))
  echo "built in $secs s (kernel+initrd $t_kernel s, debootstrap $t_rootfs s), kernel $(cat "$H/kernel/.done"), $PI_OS $PI_VM_ARCH" >"$READY"
  rm -rf "$ROOTFS"
  say "$(cat "$READY")"
}

# before PI_OS, the Bookworm image lived in $PI_VM_HOME itself: move it where it now belongs
migrate_old_cache() {
  [ "$PI_OS" = bookworm ] && [ "$PI_VM_ARCH" = arm64 ] && [ -e "$PI_VM_HOME/image.ready" ] && [ ! -e "$READY" ] || return 0
  for f in base.img vmlinuz initrd.img host_key.pub image.ready; do mv -f "$PI_VM_HOME/$f" "$H/$f"; done
  rm -rf "$PI_VM_HOME/kernel" "$PI_VM_HOME/apt" "$PI_VM_HOME/busybox"
  say "moved the Bookworm image to $H"
}

running() { [ -e "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

ssh_vm() {
  ssh -p "$PI_VM_PORT" -i "$KEY" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$KNOWN" -o ConnectTimeout=10 pi@127.0.0.1 "$@"
}

# start: a clean overlay; start keep (`boot`): the overlay a cut left, as a Pi powered on again finds its SD card
start() {
  [ -e "$READY" ] || die "no VM image yet: run \`$0 build\` (or \`make pi-vm\`), once (~15 min)"
  if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PI_VM_PORT"; print_env; return 0; fi
  command -v "$QEMU" >/dev/null 2>&1 || die "$QEMU is missing: apt-get install $QPKG qemu-utils"
  if [ "${1:-}" = keep ]; then
    [ -e "$OVERLAY" ] || die "no overlay to boot again on port $PI_VM_PORT: \`$0 start\` makes one"
  else
    rm -f "$OVERLAY"
    qemu-img create -q -f qcow2 -b "$H/base.img" -F raw "$OVERLAY"
  fi
  echo "[127.0.0.1]:$PI_VM_PORT $(cut -d' ' -f1,2 "$H/host_key.pub")" >"$KNOWN"
  append="root=/dev/vda rw console=$CONSOLE_TTY net.ifnames=0 quiet loglevel=4 systemd.show_status=auto"
  if [ "$PI_VM_ARCH" = arm64 ]; then
    machine="-M virt -cpu $PI_CPU -accel tcg,thread=multi"
  else
    [ -w /dev/kvm ] || die "PI_VM_ARCH=amd64 needs /dev/kvm"
    machine="-M q35 -cpu host -accel kvm"
  fi
  fwd=
  if [ -n "${PI_VM_BROKER:-}" ]; then
    case "$PI_VM_BROKER" in *[!0-9]*) die "PI_VM_BROKER=$PI_VM_BROKER: a TCP port on 127.0.0.1" ;; esac
    fwd=",guestfwd=tcp:10.0.2.100:1883-cmd:python3 $(cd "$(dirname "$0")" && pwd)/tcp-relay.py 127.0.0.1 $PI_VM_BROKER"
  fi
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$QEMU" $machine -smp "$PI_VM_SMP" -m "$PI_VM_MEM" -name edgelite-pi-vm \
    -kernel "$H/vmlinuz" -initrd "$H/initrd.img" -append "$append" \
    -drive "file=$OVERLAY,format=qcow2,if=none,id=root,discard=unmap" -device virtio-blk-pci,drive=root \
    -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$PI_VM_PORT-:22,hostfwd=tcp:127.0.0.1:$PI_VM_HTTP-:8080$fwd" \
    -device virtio-net-pci,netdev=net0 -device virtio-rng-pci \
    -display none -monitor none -serial "file:$CONSOLE" -daemonize -pidfile "$PIDFILE" \
    || die "$QEMU did not start"
  i=0
  until ssh_vm true 2>/dev/null; do
    i=$((i + 1))
    if ! running || [ $i -ge "${PI_VM_BOOT_TIMEOUT:-600}" ]; then
      tail -n 30 "$CONSOLE" >&2; stop >/dev/null 2>&1 || true; die "no SSH from the VM (console: $CONSOLE)"
    fi
    sleep 1
  done
  say "up ($PI_OS, $PI_CPU): SSH on 127.0.0.1:$PI_VM_PORT after $(( $(date +%s) - t0 )) s ($(ssh_vm 'uname -m; systemctl is-system-running; ls /dev/video*' 2>/dev/null | tr '\n' ' '))"
  print_env
}

stop() {
  if ! running; then rm -f "$PIDFILE" "$OVERLAY"; say "not running on port $PI_VM_PORT"; return 0; fi
  pid=$(cat "$PIDFILE")
  kill "$pid" 2>/dev/null || true  # the disk is a throwaway overlay: no clean shutdown needed
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE" "$OVERLAY"
  say "stopped (port $PI_VM_PORT)"
}

# qemu gets no chance to flush: what the guest had not written out (its page cache) is gone, as in a power cut;
# what it had written (fsync, journal commits) is in the overlay, which stays for `boot`
power_cut() {
  running || die "not running on port $PI_VM_PORT"
  pid=$(cat "$PIDFILE")
  kill -9 "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  rm -f "$PIDFILE"
  say "power cut (port $PI_VM_PORT): qemu $pid killed -9, overlay kept"
}

print_env() {
  echo "DEVICE=pi@127.0.0.1:$PI_VM_PORT"
  echo "IDENTITY=$KEY"
  echo "KNOWN_HOSTS=$KNOWN"
  echo "HTTP=127.0.0.1:$PI_VM_HTTP"
}

status() {
  if [ -e "$READY" ]; then say "image: $H/base.img ($(cat "$READY"))"; else say "image: not built"; fi
  if running; then say "VM: pid $(cat "$PIDFILE"), SSH on 127.0.0.1:$PI_VM_PORT"; else say "VM: not running on port $PI_VM_PORT"; return 1; fi
}

case "${1:-}" in
  build) build ;;
  path) echo "$H" ;;
  kernel) need_root; host_tools; mkdir -p "$H"; kernel; say "kernel $(cat "$H/kernel/.done"): $H/vmlinuz, $H/initrd.img" ;;
  start) start ;;
  boot) start keep ;;
  cut) power_cut ;;
  up) build; start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  ssh) shift; ssh_vm "$@" ;;
  *) echo "usage: $0 build|start|boot|cut|up|stop|status|env|path|ssh [CMD]   (PI_OS=$PI_OS PI_CPU=$PI_CPU PI_VM_HOME=$PI_VM_HOME PI_VM_PORT=$PI_VM_PORT)" >&2; exit 2 ;;
esac
