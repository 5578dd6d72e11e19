#!/usr/bin/env bash
# Install Podman, Buildah, runc and mmdebstrap from Debian's packages (what `make images` and `make pods-up`
# need; no Docker engine). Idempotent: does nothing when they are all present. Needs root (or sudo) and apt.
#   podman, buildah      build and run the images (OCI, daemonless)
#   runc                 the OCI runtime: Debian's crun refuses a hybrid cgroup layout ("cgroups in hybrid mode
#                        not supported"), runc with cgroupfs works there (deploy/podman/containers.conf)
#   catatonit            the init of a pod's infra container (podman builds its pause image from it locally)
#   mmdebstrap           the Python base image from Debian's packages when no image registry is reachable
#   uidmap               newuidmap/newgidmap, for Podman run by a non-root user
set -euo pipefail

need=()
for pair in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap newuidmap:uidmap; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deploy/podman/install.sh: need root or sudo to apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing from Debian packages: ${need[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends podman buildah runc catatonit mmdebstrap uidmap >/dev/null
podman --version
