#!/bin/bash -e
# swabkiosk supports only 64-bit Raspberry Pi OS (arm64): build with pi-gen's arm64 branch
# (git clone --branch arm64 https://github.com/RPi-Distro/pi-gen), whose build.sh sets
# ARCH=arm64; its master branch builds the 32-bit (armhf) image, which install.sh refuses.
if [ "${ARCH:-}" != "arm64" ]; then
	echo "swabkiosk: this pi-gen builds ARCH=${ARCH:-unset}; swabkiosk needs the 64-bit image: use pi-gen's arm64 branch" >&2
	exit 1
fi
# Start from the previous stage's root file system (stage2: Raspberry Pi OS Lite).
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
