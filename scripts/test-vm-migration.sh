#!/usr/bin/env bash
# Live-migrate a KubeVirt VM once and report what happened: the end-to-end check that events
# reach Loki (look for the migration in the dashboard afterwards).
#
#   VM_NAME=fedora-vm VM_NAMESPACE=virtualmachines scripts/test-vm-migration.sh
#
# Starts the VM if it is not running (spec.running or spec.runStrategy, whichever it uses; KubeVirt
# refuses both at once) and puts it back as it was on exit. Waits for its VMI to exist, then to be
# Ready, creates a VirtualMachineInstanceMigration, follows its phase until Succeeded or Failed (or
# TIMEOUT seconds), prints source -> target and the duration. Exits 0 on success, 1 on a failed or
# timed-out migration, 2 when the VM does not exist, cannot be started or never becomes ready.
set -euo pipefail

VM_NAME="${VM_NAME:-fedora-vm}"
VM_NAMESPACE="${VM_NAMESPACE:-virtualmachines}"
TIMEOUT="${TIMEOUT:-600}"          # seconds for the migration
READY_TIMEOUT="${READY_TIMEOUT:-300}"
POLL="${POLL:-5}"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "$*"; exit 2; }

k() { kubectl -n "$VM_NAMESPACE" "$@"; }

# The patch that puts the VM back as it was, applied on any exit once we started it.
restore_patch=""
# Called by the EXIT trap below.
# shellcheck disable=SC2329
restore() {
  if [[ -n "$restore_patch" ]]; then
    log "putting VM $VM_NAME back: $restore_patch"
    k patch vm "$VM_NAME" --type merge -p "$restore_patch" >/dev/null || log "could not restore VM $VM_NAME"
  fi
}
trap restore EXIT

if ! k get vm "$VM_NAME" >/dev/null 2>&1; then
  fail "VM $VM_NAMESPACE/$VM_NAME not found"
fi

if [[ "$(k get vm "$VM_NAME" -o jsonpath='{.status.ready}')" != "true" ]]; then
  running="$(k get vm "$VM_NAME" -o jsonpath='{.spec.running}')"
  if [[ -n "$running" ]]; then   # the older field: KubeVirt refuses runStrategy beside it
    start='{"spec":{"running":true}}'
    back="{\"spec\":{\"running\":$running}}"
  else
    strategy="$(k get vm "$VM_NAME" -o jsonpath='{.spec.runStrategy}')"
    start='{"spec":{"runStrategy":"Always"}}'
    back="{\"spec\":{\"runStrategy\":\"${strategy:-Halted}\"}}"
  fi
  log "starting VM $VM_NAMESPACE/$VM_NAME"
  k patch vm "$VM_NAME" --type merge -p "$start" >/dev/null || fail "could not start VM $VM_NAME"
  restore_patch="$back"
fi

# A VMI appears only some time after the VM is started: `kubectl wait --for=condition=…` on an
# object that does not exist yet fails at once, so wait for it to exist first.
deadline=$(( SECONDS + READY_TIMEOUT ))
log "waiting for VMI $VM_NAME to exist and be Ready (up to ${READY_TIMEOUT}s)"
if kubectl wait --help 2>/dev/null | grep -q -- '--for=create'; then   # kubectl >= 1.31
  k wait vmi "$VM_NAME" --for=create --timeout="${READY_TIMEOUT}s" >/dev/null || fail "VMI $VM_NAME was not created"
else
  until k get vmi "$VM_NAME" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || fail "VMI $VM_NAME was not created"
    sleep "$POLL"
  done
fi
left=$(( deadline - SECONDS > 1 ? deadline - SECONDS : 1 ))
if ! k wait vmi "$VM_NAME" --for=condition=Ready --timeout="${left}s" >/dev/null; then
  fail "VMI $VM_NAME did not become Ready"
fi

source_node="$(k get vmi "$VM_NAME" -o jsonpath='{.status.nodeName}')" || fail "cannot read VMI $VM_NAME"
migration="$(k create -o jsonpath='{.metadata.name}' -f - <<EOM
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata:
  generateName: kubevirt-migrate-vm-
spec:
  vmiName: ${VM_NAME}
EOM
)" || fail "could not create a migration of $VM_NAME"
log "created migration $migration of $VM_NAME on $source_node"

start=$SECONDS
phase=""
while (( SECONDS - start < TIMEOUT )); do
  phase="$(k get vmim "$migration" -o jsonpath='{.status.phase}' || true)"
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
