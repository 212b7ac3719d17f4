#!/usr/bin/env bash
# Live-migrate a KubeVirt VM once and report what happened: the end-to-end check that events
# reach Loki (look for the migration in the dashboard afterwards).
#
#   VM_NAME=fedora-vm VM_NAMESPACE=virtualmachines scripts/test-vm-migration.sh
#
# Starts the VM if it is not running (spec.running or spec.runStrategy, whichever it uses; KubeVirt
# refuses both at once; a runStrategy: Manual VM through its start subresource) and stops it again
# on exit. Waits for its VMI to exist, then to be Ready, checks that it is LiveMigratable, creates a
# VirtualMachineInstanceMigration, follows its phase until Succeeded or Failed (or TIMEOUT seconds),
# prints source -> target and the duration. On a timeout, Ctrl-C or SIGTERM the migration still in
# flight is cancelled first (its VMIM deleted, and waited for until KubeVirt has ended it); a VM
# that may still be migrating is never stopped. Exits 0 on success, 1 on a failed or timed-out
# migration, 2 when the VM does not exist, cannot be started, never becomes ready or is not
# LiveMigratable, 130/143 when interrupted.
set -euo pipefail

VM_NAME="${VM_NAME:-fedora-vm}"
VM_NAMESPACE="${VM_NAMESPACE:-virtualmachines}"
TIMEOUT="${TIMEOUT:-600}"          # seconds for the migration
READY_TIMEOUT="${READY_TIMEOUT:-300}"
POLL="${POLL:-5}"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "$*"; exit 2; }

k() { kubectl -n "$VM_NAMESPACE" "$@"; }

CANCEL_TIMEOUT="${CANCEL_TIMEOUT:-120}"   # seconds for KubeVirt to end a cancelled migration

# How to put the VM back as it was, run on any exit once we started it: a merge patch of the field
# we changed, or "stop" (the stop subresource) for runStrategy: Manual, where patching the strategy
# back to Manual would leave the VM running.
restore_patch=""
restore_stop=""
# The migration we created, until it has ended (Succeeded or Failed).
in_flight=""

# KubeVirt's start/stop subresources (PUT): virtctl when installed, else kubectl's raw PUT.
vm_subresource() {
  if command -v virtctl >/dev/null 2>&1; then
    virtctl -n "$VM_NAMESPACE" "$1" "$VM_NAME"
  else
    kubectl replace --raw "/apis/subresources.kubevirt.io/v1/namespaces/$VM_NAMESPACE/virtualmachines/$VM_NAME/$1" -f - <<<'{}'
  fi
}

# Deleting a VMIM that has not ended asks KubeVirt to abort the migration; its finalizer stays until
# the migration has ended, so the object is gone only once the VMI runs on one node again.
# Called by restore (the EXIT trap).
# shellcheck disable=SC2329
cancel_migration() {
  log "cancelling migration $in_flight (deleting the VMIM, up to ${CANCEL_TIMEOUT}s)"
  if k delete vmim "$in_flight" --wait=true --timeout="${CANCEL_TIMEOUT}s" >/dev/null; then
    in_flight=""
  else
    log "migration $in_flight may still be running: kubectl -n $VM_NAMESPACE get vmim $in_flight"
  fi
}

# Called by the EXIT trap below.
# shellcheck disable=SC2329
restore() {
  if [[ -n "$in_flight" ]]; then
    cancel_migration
  fi
  if [[ -z "$restore_patch$restore_stop" ]]; then
    return
  fi
  if [[ -n "$in_flight" ]]; then   # never stop a VM that may still be migrating
    log "not stopping VM $VM_NAME: its migration $in_flight has not ended; stop it by hand afterwards"
  elif [[ -n "$restore_stop" ]]; then
    log "stopping VM $VM_NAME again (runStrategy Manual: the stop subresource)"
    vm_subresource stop >/dev/null || log "could not stop VM $VM_NAME"
  else
    log "putting VM $VM_NAME back: $restore_patch"
    k patch vm "$VM_NAME" --type merge -p "$restore_patch" >/dev/null || log "could not restore VM $VM_NAME"
  fi
}
trap restore EXIT
# Ctrl-C and SIGTERM end the script through the EXIT trap (cancel, then restore) with 130 / 143.
trap 'exit 130' INT
trap 'exit 143' TERM

if ! k get vm "$VM_NAME" >/dev/null 2>&1; then
  fail "VM $VM_NAMESPACE/$VM_NAME not found"
fi

if [[ "$(k get vm "$VM_NAME" -o jsonpath='{.status.ready}')" != "true" ]]; then
  running="$(k get vm "$VM_NAME" -o jsonpath='{.spec.running}')"
  strategy="$(k get vm "$VM_NAME" -o jsonpath='{.spec.runStrategy}')"
  log "starting VM $VM_NAMESPACE/$VM_NAME"
  if [[ -n "$running" ]]; then   # the older field: KubeVirt refuses runStrategy beside it
    k patch vm "$VM_NAME" --type merge -p '{"spec":{"running":true}}' >/dev/null || fail "could not start VM $VM_NAME"
    restore_patch="{\"spec\":{\"running\":$running}}"
  elif [[ "$strategy" == "Manual" ]]; then   # Manual: started and stopped through subresources only
    vm_subresource start >/dev/null || fail "could not start VM $VM_NAME"
    restore_stop=1
  else
    k patch vm "$VM_NAME" --type merge -p '{"spec":{"runStrategy":"Always"}}' >/dev/null \
      || fail "could not start VM $VM_NAME"
    restore_patch="{\"spec\":{\"runStrategy\":\"${strategy:-Halted}\"}}"
  fi
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

# KubeVirt's admission webhook refuses a migration of a VMI that is not LiveMigratable (a
# ReadWriteOnce disk, a host device, ...); ask first, and say why.
migratable="$(k get vmi "$VM_NAME" -o jsonpath='{.status.conditions[?(@.type=="LiveMigratable")].status}')" \
  || fail "cannot read VMI $VM_NAME"
if [[ "$migratable" != "True" ]]; then
  why="$(k get vmi "$VM_NAME" -o jsonpath='{.status.conditions[?(@.type=="LiveMigratable")].message}' || true)"
  fail "VMI $VM_NAME is not LiveMigratable (${migratable:-no condition}): ${why:-no reason given}"
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
in_flight="$migration"
log "created migration $migration of $VM_NAME on $source_node"

start=$SECONDS
phase=""
while (( SECONDS - start < TIMEOUT )); do
  phase="$(k get vmim "$migration" -o jsonpath='{.status.phase}' || true)"
  case "$phase" in
    Succeeded|Failed) in_flight=""; break ;;
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
