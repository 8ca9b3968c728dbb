#!/usr/bin/env bash
# Installs the Debian packages `jixiaoan lab` needs (network tools, IoT daemons and clients,
# attack tools). Idempotent; runs apt-get update only when something is missing.
# Usage: bash tools/lab-deps.sh [--with-telnet]        (as root, or with sudo available)
#   --with-telnet  also installs inetutils-telnetd (and inetutils-inetd) for the camera's
#                  telnet server and the telnet-bruteforce attack. The machine's own inetd is
#                  disabled again afterwards: the lab runs its own copy inside a namespace.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES=(
  iproute2 iptables procps iputils-ping tcpdump         # namespaces, NAT, capture
  busybox openssh-server openssh-client openssl          # camera: web server, weak-password SSH
  mosquitto mosquitto-clients                            # MQTT broker (internet) and plug client
  dnsmasq-base bind9-dnsutils curl                       # DNS server, phone/tv clients
  nmap hping3 hydra slowhttptest apache2-utils           # attack tools
)
TELNET_PACKAGES=(inetutils-telnetd inetutils-inetd)
telnet=0
for arg in "$@"; do
  case "$arg" in
    --with-telnet) telnet=1; PACKAGES+=("${TELNET_PACKAGES[@]}") ;;
    *) echo "lab-deps: unknown option $arg" >&2; exit 2 ;;
  esac
done
need=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "lab-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "lab-deps: installing ${need[*]}"
$SUDO apt-get update -qq
# policy-rc.d 101: packages must not start their daemons (sshd, mosquitto, inetd) on the
# machine itself; the lab starts its own copies inside namespaces.
cleanup_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  cleanup_policy=1
fi
set +e
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
rc=$?
set -e
[ $cleanup_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
if [ $telnet -eq 1 ]; then
  # no telnet service on the machine itself
  $SUDO update-inetd --disable telnet 2>/dev/null || true
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now inetutils-inetd 2>/dev/null || true
  fi
fi
exit $rc
