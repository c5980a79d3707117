#!/usr/bin/env bash
# Debian packages the tests need: installed only when missing (and only as root).
# --bench: also what the benchmarks need (wrk; redis-server for the starsessions row).
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fi
command -v nft >/dev/null 2>&1 || need+=(nftables)  # chaos runs: loss and partitions
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
  exit 0  # the tests that need them skip, saying why
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
