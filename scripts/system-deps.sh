#!/bin/sh
# Debian packages the demo and the tests use: the Fashion-MNIST data set, sshd + rsync (deploy
# tests), Chromium (preview page test), mosquitto (MQTT tests), GStreamer's RTSP server with
# the system python3 (RTSP tests). Installs only what is missing, only where apt and root are.
set -e
want=""
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || want="$want dataset-fashion-mnist"
[ -x /usr/sbin/sshd ] || want="$want openssh-server"
command -v ssh >/dev/null 2>&1 || want="$want openssh-client"
command -v rsync >/dev/null 2>&1 || want="$want rsync"
command -v chromium >/dev/null 2>&1 || want="$want chromium"
[ -x /usr/sbin/mosquitto ] || want="$want mosquitto"
[ -e /usr/lib/x86_64-linux-gnu/girepository-1.0/GstRtspServer-1.0.typelib ] || \
  ls /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib >/dev/null 2>&1 || \
  want="$want gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
[ -z "$want" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing Debian packages:$want (install them with apt, as root); continuing" >&2
  exit 0
fi
echo "system-deps: apt-get install$want"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $want >/dev/null ||
  echo "system-deps: could not install$want; the tests that need them will skip or fail" >&2
