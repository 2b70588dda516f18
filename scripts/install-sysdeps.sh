#!/bin/bash
# Install the Debian packages the build and the tests need, once: a second run finds them and
# returns at once. Needs root (or sudo) on a Debian 12 machine.
set -euo pipefail
PACKAGES=(docker.io debootstrap tar openssl ca-certificates python3-venv
          postgresql-client mariadb-client postgresql pgpool2 shellcheck)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
# Package scripts must not start database servers on this machine (the tests start their own):
# Debian's policy-rc.d hook, answering 101 "action forbidden", for the time of this install only.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null && $SUDO chmod 0755 $policy && own_policy=1
fi
trap '[ $own_policy -eq 1 ] && $SUDO rm -f $policy' EXIT
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
