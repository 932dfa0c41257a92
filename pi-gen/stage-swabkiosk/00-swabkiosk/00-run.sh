#!/bin/bash -e
# Installs swabkiosk into the image with the same script a technician runs on a Pi
# (deploy/install.sh): users, venv, units, udev rules, Chromium kiosk.
# The swabkiosk checkout is three levels up (pi-gen/stage-swabkiosk/00-swabkiosk) unless
# SWABKIOSK_SRC says otherwise; SWABKIOSK_DATA_LABEL adds the store partition to fstab.
src=${SWABKIOSK_SRC:-$(realpath "$(dirname "${BASH_SOURCE[0]}")/../../..")}
[ -x "${src}/deploy/install.sh" ] || { echo "swabkiosk source not found at ${src}" >&2; exit 1; }

rm -rf "${ROOTFS_DIR}/opt/swabkiosk/src"
install -d "${ROOTFS_DIR}/opt/swabkiosk/src"
tar -C "${src}" --exclude=.git --exclude=.venv --exclude=__pycache__ --exclude=.pytest_cache \
	--exclude=.hypothesis --exclude='*.egg-info' --exclude=build --exclude=dist -cf - . \
	| tar -C "${ROOTFS_DIR}/opt/swabkiosk/src" --no-same-owner --no-same-permissions -xf -

on_chroot << CHROOT
bash /opt/swabkiosk/src/deploy/install.sh ${SWABKIOSK_DATA_LABEL:+--data-label "${SWABKIOSK_DATA_LABEL}"}
CHROOT
