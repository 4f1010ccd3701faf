#!/usr/bin/env bash
# System packages the tests use: Debian chromium for the chat UI browser test,
# PostgreSQL for the store/checkpointer test, Graphviz (dot) for process maps and
# BPMN diagram layout. Installs only what is missing and only as root; without
# them those tests skip with a reason.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not installing ${need[*]} (needs root and apt-get); the tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null \
  || echo "note: apt-get could not install ${need[*]}; the tests that need them will skip" >&2
exit 0
