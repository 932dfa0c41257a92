#!/usr/bin/env bash
# Turns Raspberry Pi OS Lite (bookworm) into a swabkiosk: Debian packages, the service
# users, the venv in /opt/swabkiosk, systemd units, udev rules and the Chromium kiosk on
# tty1. Safe to run again: it changes only what is not already as it should be.
#
#   sudo deploy/install.sh                      on the Pi (or inside a chroot: pi-gen)
#   sudo deploy/install.sh --root DIR           into a root file system (CI's debootstrap chroot)
#   options:
#     --wheelhouse DIR   install the Python packages from DIR only (no PyPI): pip wheel -w DIR .
#     --data-label L     mount the ext4 partition labelled L at /var/lib/swabkiosk (read-only root)
#     --packages-only    just the Debian packages (used to cache a prepared chroot)
#     --print-packages   print the Debian package list and exit
#     --check-arch       only check that this system's architecture is supported (arm64)
# Supported: 64-bit Raspberry Pi OS (arm64: Pi 3, 4, 5, Zero 2 W). amd64 is accepted for CI
# and trying it out on a PC. 32-bit (armhf) is refused: see arch_supported below.
# Docs: docs/deploy.md.
set -euo pipefail
# A failing step stops the script and says which one (set -e alone stops without a word).
trap 'echo "install.sh: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

src=$(cd "$(dirname "$0")/.." && pwd)
root="" wheelhouse="" data_label="" packages_only=0 check_arch=0

# Raspberry Pi OS names the browser chromium-browser (older images) or chromium; python3-picamera2
# exists only there (it brings libcamera and its Python bindings, which are not on PyPI).
# espeak-ng: the daemon's spoken prompts (`espeak-ng -v cmn`, Mandarin voice in espeak-ng-data).
# xwayland: bookworm's cage (0.1.4) will not start without /usr/bin/Xwayland; libusb-1.0-0: pyusb's
# backend for usb:VID:PID printers. fonts-wqy-microhei: the CJK font embedded in the paper register
# (`swabkiosk export --register`, A4 PDF): 1.6 MB download, 5.1 MB installed, Apache-2.0.
base_packages=(python3 python3-venv libzbar0 libusb-1.0-0 systemd udev dbus libpam-systemd cage xwayland fonts-noto-cjk fonts-wqy-microhei ca-certificates espeak-ng)

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$(realpath "$2"); shift 2 ;;
    --wheelhouse) wheelhouse=$(realpath "$2"); shift 2 ;;
    --data-label) data_label=$2; shift 2 ;;
    --packages-only) packages_only=1; shift ;;
    --print-packages) echo "${base_packages[*]} chromium"; exit 0 ;;
    --check-arch) check_arch=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

say() { echo "install.sh: $*"; }

# The architecture of the Debian userland (dpkg's), not the kernel's: 32-bit Raspberry Pi OS
# on a Pi 4 or 5 runs a 64-bit kernel, so `uname -m` says aarch64 there too.
arch_supported() {
  local arch
  arch=$(dpkg --print-architecture)
  case "$arch" in
    arm64) return 0 ;;
    amd64) say "architecture amd64: not a Pi (fine for CI and for trying the kiosk on a PC)"; return 0 ;;
    armhf|armel)
      echo "install.sh: this is 32-bit Raspberry Pi OS ($arch); swabkiosk supports only 64-bit Raspberry Pi OS" \
           "(arm64) on a Pi 3, 4, 5 or Zero 2 W. PyPI has no $arch wheels for cffi, pillow, zxing-cpp and" \
           "pyyaml: pip would compile them on the Pi (a C/C++ toolchain, and minutes to hours) or need piwheels," \
           "which this kiosk is not tested with. Flash the 64-bit image (docs/deploy.md)." >&2
      return 1 ;;
    *)
      echo "install.sh: unsupported architecture $arch; swabkiosk supports 64-bit Raspberry Pi OS (arm64)" \
           "on a Pi 3, 4, 5 or Zero 2 W (and amd64 for CI)." >&2
      return 1 ;;
  esac
}
if [ "$check_arch" -eq 1 ]; then arch_supported; exit $?; fi
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

# --------------------------------------------------------------- into another root
if [ -n "$root" ]; then
  [ -x "$root/bin/sh" ] || { echo "install.sh: $root is not a root file system" >&2; exit 1; }
  stage=$root/opt/swabkiosk/src
  mounts=()
  cleanup() {
    for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root/tmp/swabkiosk-wheelhouse"
  }
  trap cleanup EXIT
  for fs in proc sys dev dev/pts; do
    mkdir -p "$root/$fs"
    case $fs in
      proc) mount -t proc proc "$root/proc" ;;
      sys) mount -t sysfs sys "$root/sys" ;;
      *) mount --bind "/$fs" "$root/$fs" ;;
    esac
    mounts+=("$root/$fs")
  done
  # No service may start inside the chroot while packages are installed.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  rm -rf "$stage"; mkdir -p "$stage"
  # The source the kiosk was built from stays in the image (root-owned, read-only for others).
  tar -C "$src" --exclude=.git --exclude=.venv --exclude='__pycache__' --exclude='.pytest_cache' \
      --exclude='.hypothesis' --exclude='*.egg-info' --exclude=build --exclude=dist -cf - . | tar -C "$stage" --no-same-owner --no-same-permissions -xf -
  args=()
  if [ -n "$wheelhouse" ]; then
    rm -rf "$root/tmp/swabkiosk-wheelhouse"; cp -r "$wheelhouse" "$root/tmp/swabkiosk-wheelhouse"
    args+=(--wheelhouse /tmp/swabkiosk-wheelhouse)
  fi
  [ -z "$data_label" ] || args+=(--data-label "$data_label")
  [ "$packages_only" -eq 0 ] || args+=(--packages-only)
  chroot "$root" /bin/bash /opt/swabkiosk/src/deploy/install.sh "${args[@]}"
  exit 0
fi

arch_supported || exit 1

# A live system runs systemd as PID 1; in a chroot (pi-gen, CI) units are only enabled.
live=0; [ -d /run/systemd/system ] && live=1

# --------------------------------------------------------------- Debian packages
packages=("${base_packages[@]}")
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() { [ "$apt_updated" -eq 1 ] || { apt-get update -qq; apt_updated=1; }; }
# Which browser and camera packages the archives offer is read from the package lists already
# there; only a system without any fetches them for that (apt-get update: ~10 s, and long DNS
# waits without a network). Installing anything always fetches them first.
apt_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt_update; }
available() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if installed chromium-browser || installed chromium; then
  installed chromium-browser && packages+=(chromium-browser) || packages+=(chromium)
else
  apt_lists
  available chromium-browser && packages+=(chromium-browser) || packages+=(chromium)
fi
if ! installed python3-picamera2; then
  apt_lists
  if available python3-picamera2; then
    packages+=(python3-picamera2)
  else
    say "python3-picamera2 is not in this system's archives (not Raspberry Pi OS): no camera reader here"
  fi
fi
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$packages_only" -eq 0 ] || { say "packages done"; exit 0; }

# --------------------------------------------------------------- users and directories
# The daemon's user: exactly the device groups it needs (docs/deploy.md), no login, no home
# but its state directory.
if ! getent passwd swabkiosk >/dev/null; then
  say "creating user swabkiosk"
  useradd --system --user-group --home-dir /var/lib/swabkiosk --no-create-home --shell /usr/sbin/nologin \
          --comment "swabkiosk daemon" swabkiosk
fi
usermod --groups dialout,video,lp,audio swabkiosk
# The screen's user: runs cage + Chromium on tty1 (display, touch, spoken prompts); it reads
# nothing of the store or secrets.
screen_groups=video
for g in render input audio; do getent group "$g" >/dev/null && screen_groups+=",$g"; done
if ! getent passwd swabkiosk-screen >/dev/null; then
  say "creating user swabkiosk-screen"
  useradd --system --user-group --home-dir /var/lib/swabkiosk-screen --create-home --shell /usr/sbin/nologin \
          --comment "swabkiosk kiosk screen" swabkiosk-screen
fi
usermod --groups "$screen_groups" swabkiosk-screen

install -d -m 0755 -o root -g root /opt/swabkiosk /opt/swabkiosk/bin /opt/swabkiosk/docs /opt/swabkiosk/share
install -d -m 0750 -o root -g swabkiosk /etc/swabkiosk
install -d -m 0700 -o swabkiosk -g swabkiosk /var/lib/swabkiosk
install -d -m 0700 -o swabkiosk-screen -g swabkiosk-screen /var/lib/swabkiosk-screen

# --------------------------------------------------------------- the Python app
# --system-site-packages: picamera2 and libcamera come from Debian packages, not PyPI.
venv=/opt/swabkiosk/venv
if [ -e "$venv" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  say "$venv is incomplete (no python or no pip): making it again"
  rm -rf "$venv"
fi
if [ ! -e "$venv" ]; then
  say "creating $venv"
  python3 -m venv --system-site-packages "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# The versions CI tested, every runtime dependency pinned (deploy/constraints.txt); the
# pi-gen stage runs this script, so the image gets the same.
constraints=(-c "$src/deploy/constraints.txt")
if [ -n "$wheelhouse" ]; then
  wheel=$(ls "$wheelhouse"/swabkiosk-*.whl | sort -V | tail -n 1)
  "${pip[@]}" install "${constraints[@]}" --no-index --find-links "$wheelhouse" "$wheel"
  # Same version number, new code: always replace the app itself, never its dependencies.
  "${pip[@]}" install --no-index --no-deps --force-reinstall "$wheel"
else
  build=$(mktemp -d); trap 'rm -rf "$build"' EXIT
  tar -C "$src" --exclude=.git --exclude=.venv -cf - . | tar -C "$build" -xf -
  "${pip[@]}" wheel --no-deps --wheel-dir "$build/dist" "$build"
  wheel=$(ls "$build"/dist/swabkiosk-*.whl)
  "${pip[@]}" install "${constraints[@]}" "$wheel"
  "${pip[@]}" install --no-deps --force-reinstall "$wheel"
fi
"$venv/bin/swabkiosk" --version

# --------------------------------------------------------------- units, rules, browser
install -m 0755 -o root -g root "$src/systemd/kiosk-browser" /opt/swabkiosk/bin/kiosk-browser
install -m 0644 -o root -g root "$src/systemd/kiosk-waiting.html" /opt/swabkiosk/share/kiosk-waiting.html
install -m 0644 -o root -g root "$src/docs/deploy.md" /opt/swabkiosk/docs/deploy.md
install -m 0644 -o root -g root "$src/config/station.example.toml" /opt/swabkiosk/station.example.toml
for unit in swabkiosk.service swabkiosk-firstboot.service swabkiosk-screen.service; do
  install -m 0644 -o root -g root "$src/systemd/$unit" "/etc/systemd/system/$unit"
done
install -m 0644 -o root -g root "$src/config/udev/70-swabkiosk.rules" /etc/udev/rules.d/70-swabkiosk.rules
# If the whole Pi hangs, the SoC watchdog reboots it (the daemon has its own WatchdogSec).
install -d -m 0755 /etc/systemd/system.conf.d
printf '[Manager]\nRuntimeWatchdogSec=15s\nRebootWatchdogSec=2min\n' > /etc/systemd/system.conf.d/50-swabkiosk-watchdog.conf

# --------------------------------------------------------------- the store's partition
if [ -n "$data_label" ]; then
  line="LABEL=$data_label /var/lib/swabkiosk ext4 defaults,noatime 0 2"
  if ! grep -q "^LABEL=$data_label " /etc/fstab; then
    say "store partition: $line"
    echo "$line" >> /etc/fstab
  fi
fi

if [ "$live" -eq 1 ]; then
  systemctl daemon-reload
  if [ -S /run/udev/control ]; then
    # One command a line: under set -e a failure inside an `a && b` chain would not stop the script.
    udevadm control --reload
    udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usb --subsystem-match=usbmisc
  else
    # A container (systemd-nspawn) has no udevd; on a Pi it runs from the first boot on.
    say "udevd is not running here (a container?): the device rules are installed, and load when udevd starts"
  fi
fi
systemctl enable swabkiosk.service swabkiosk-firstboot.service swabkiosk-screen.service
systemctl set-default graphical.target
say "done. Put swabkiosk.toml (and its swabkiosk/ folder) on the boot partition and reboot."
