#!/usr/bin/env bash
# Live-migrate a KubeVirt VM once and report what happened: the end-to-end check that events
# reach Loki (look for the migration in the dashboard afterwards).
#
#   VM_NAME=fedora-vm VM_NAMESPACE=virtualmachines scripts/test-vm-migration.sh
#
# Starts the VM if it is not running, waits until its VMI is Ready, creates a
# VirtualMachineInstanceMigration, follows its phase until Succeeded or Failed (or TIMEOUT
# seconds), prints source -> target and the duration. Exits 0 on success, 1 on a failed or
# timed-out migration, 2 when the VM does not exist or never becomes ready.
set -euo pipefail

VM_NAME="${VM_NAME:-fedora-vm}"
VM_NAMESPACE="${VM_NAMESPACE:-virtualmachines}"
TIMEOUT="${TIMEOUT:-600}"          # seconds for the migration
READY_TIMEOUT="${READY_TIMEOUT:-300}"
POLL="${POLL:-5}"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

k() { kubectl -n "$VM_NAMESPACE" "$@"; }

if ! k get vm "$VM_NAME" >/dev/null 2>&1; then
  log "VM $VM_NAMESPACE/$VM_NAME not found"
  exit 2
fi

if [[ "$(k get vm "$VM_NAME" -o jsonpath='{.status.ready}')" != "true" ]]; then
  log "starting VM $VM_NAMESPACE/$VM_NAME"
  k patch vm "$VM_NAME" --type merge -p '{"spec":{"runStrategy":"Always"}}' >/dev/null
fi

log "waiting for VMI $VM_NAME to be Ready (up to ${READY_TIMEOUT}s)"
if ! k wait vmi "$VM_NAME" --for=condition=Ready --timeout="${READY_TIMEOUT}s" >/dev/null; then
  log "VMI $VM_NAME did not become Ready"
  exit 2
fi

source_node="$(k get vmi "$VM_NAME" -o jsonpath='{.status.nodeName}')"
migration="$(k create -o jsonpath='{.metadata.name}' -f - <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata:
  generateName: kubevirt-migrate-vm-
spec:
  vmiName: ${VM_NAME}
EOF
)"
log "created migration $migration of $VM_NAME on $source_node"

start=$SECONDS
phase=""
while (( SECONDS - start < TIMEOUT )); do
  phase="$(k get vmim "$migration" -o jsonpath='{.status.phase}')"
  case "$phase" in
    Succeeded|Failed) break ;;
  esac
  sleep "$POLL"
done
elapsed=$(( SECONDS - start ))

target_node="$(k get vmim "$migration" -o jsonpath='{.status.migrationState.targetNode}' || true)"
echo "migration:  $VM_NAMESPACE/$migration"
echo "vm:         $VM_NAME"
echo "nodes:      ${source_node:-?} -> ${target_node:-?}"
echo "phase:      ${phase:-unknown}"
echo "duration:   ${elapsed}s"

case "$phase" in
  Succeeded) exit 0 ;;
  Failed)
    reason="$(k get vmim "$migration" -o jsonpath='{.status.migrationState.failureReason}' || true)"
    echo "reason:     ${reason:-unknown}"
    exit 1 ;;
  *)
    log "migration $migration did not finish within ${TIMEOUT}s (last phase: ${phase:-none})"
    exit 1 ;;
esac
