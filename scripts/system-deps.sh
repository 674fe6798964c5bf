#!/bin/sh
# Debian packages the demo and the tests use: the Fashion-MNIST data set, sshd + rsync (deploy
# tests), Chromium (preview page test), mosquitto (MQTT tests), GStreamer's RTSP server with
# the system python3 (RTSP tests), shellcheck (the scripts' lint test). Installs only what is
# missing, only where apt and root are. `system-deps.sh imx500`: only Java 17, which Sony's imx500-converter
# runs on (`make imx500-venv`; nothing else needs it).
set -e
if [ "${1:-}" = imx500 ]; then
  set --
  command -v java >/dev/null 2>&1 || set -- openjdk-17-jre-headless
else
set --  # the missing packages, one argument each
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || set -- "$@" dataset-fashion-mnist
[ -x /usr/sbin/sshd ] || set -- "$@" openssh-server
command -v ssh >/dev/null 2>&1 || set -- "$@" openssh-client
command -v rsync >/dev/null 2>&1 || set -- "$@" rsync
command -v chromium >/dev/null 2>&1 || set -- "$@" chromium
[ -x /usr/sbin/mosquitto ] || set -- "$@" mosquitto
[ -e /usr/lib/x86_64-linux-gnu/girepository-1.0/GstRtspServer-1.0.typelib ] || \
  ls /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib >/dev/null 2>&1 || \
  set -- "$@" gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
command -v shellcheck >/dev/null 2>&1 || set -- "$@" shellcheck
fi
[ $# -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing Debian packages: $* (install them with apt, as root); continuing" >&2
  exit 0
fi
echo "system-deps: apt-get install $*"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
  echo "system-deps: could not install $*; the tests that need them will skip or fail" >&2
