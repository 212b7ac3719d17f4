#!/usr/bin/env python3
"""A stand-in for ``kubectl`` that plays one KubeVirt migration (for scripts/ tests).

FAKE_SCENARIO: success | failure | timeout | missing | never-ready | never-created.
FAKE_VM: halted (default: ``spec.runStrategy: Halted``) | running-field (the older
``spec.running: false``; KubeVirt refuses a runStrategy patch beside it) | ready (already running).
FAKE_KUBECTL_CREATE=1: this kubectl knows ``wait --for=create`` (>= 1.31); else the VMI appears
only on the third ``get vmi``, as it does some time after the VM is started.
FAKE_VM=manual: ``spec.runStrategy: Manual`` (started and stopped through the subresources, which
this kubectl takes as ``replace --raw …/start|stop``). FAKE_MIGRATABLE: the VMI's LiveMigratable
condition status (default True). FAKE_DELETE_FAILS=1: deleting the VMIM does not finish in time.
FAKE_PATCH_FAILS=1: the API server refuses the start patch. Every call is appended to FAKE_LOG as
one JSON line; FAKE_STATE holds the poll counts.
"""

import json
import os
import sys
from pathlib import Path

args = sys.argv[1:]
scenario = os.environ["FAKE_SCENARIO"]
vm = os.environ.get("FAKE_VM", "halted")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state = Path(os.environ["FAKE_STATE"])
counts = json.loads(state.read_text()) if state.exists() else {}


def bump(name: str) -> int:
    """How often ``name`` was asked before this call."""
    seen = int(counts.get(name, 0))
    counts[name] = seen + 1
    state.write_text(json.dumps(counts))
    return seen


if args == ["wait", "--help"]:
    print("Examples:\n  kubectl wait --for=condition=Ready=false pod/busybox1")
    if os.environ.get("FAKE_KUBECTL_CREATE") == "1":
        print("  kubectl wait --for=create pod/busybox1 --timeout=60s")
    sys.exit(0)

if args[:2] == ["replace", "--raw"]:  # KubeVirt's start/stop subresources (PUT)
    ns = os.environ.get("EXPECT_NAMESPACE", "virtualmachines")
    assert args[2].startswith(f"/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/"), args
    assert args[2].rsplit("/", 1)[1] in {"start", "stop"} and args[3:] == ["-f", "-"], args
    sys.exit(0)

if args[:2] == ["-n", os.environ.get("EXPECT_NAMESPACE", "virtualmachines")]:
    args = args[2:]
else:
    sys.exit(f"fake kubectl: unexpected namespace in {sys.argv[1:]}")

verb, jsonpath = args[0], next((a.split("=", 1)[1] for a in args if a.startswith("jsonpath=")), None)
if "-o" in args:
    jsonpath = args[args.index("-o") + 1].removeprefix("jsonpath=")

if verb == "get" and args[1] == "vm":
    if scenario == "missing":
        sys.exit('Error from server (NotFound): virtualmachines.kubevirt.io "x" not found')
    fields = {
        "{.status.ready}": "true" if vm == "ready" else "false",
        "{.spec.running}": "false" if vm == "running-field" else "",
        "{.spec.runStrategy}": {"running-field": "", "manual": "Manual"}.get(vm, "Halted"),
    }
    print(fields[jsonpath] if jsonpath else "vm", end="")
elif verb == "patch":
    patch = args[args.index("-p") + 1]
    if os.environ.get("FAKE_PATCH_FAILS") == "1" or (vm == "running-field" and "runStrategy" in patch):
        sys.exit("The request is invalid: running and runStrategy are mutually exclusive")
elif verb == "wait" and "--for=create" in args:
    if os.environ.get("FAKE_KUBECTL_CREATE") != "1":
        sys.exit('error: unrecognized condition: "create"')
    if scenario == "never-created":
        sys.exit("error: timed out waiting for the condition")
    bump("created")
elif verb == "wait":
    if scenario == "never-ready" or (not counts.get("created") and vm != "ready"):
        # kubectl wait on a VMI that does not exist (yet) fails at once.
        sys.exit('Error from server (NotFound): virtualmachineinstances.kubevirt.io "x" not found')
elif verb == "get" and args[1] == "vmi" and not jsonpath:
    if vm != "ready" and (bump("vmi") < 2 or scenario == "never-created"):
        sys.exit('Error from server (NotFound): virtualmachineinstances.kubevirt.io "x" not found')
    bump("created")
    print("vmi", end="")
elif verb == "get" and args[1] == "vmi" and jsonpath and "LiveMigratable" in jsonpath:
    migratable = os.environ.get("FAKE_MIGRATABLE", "True")
    if jsonpath.endswith(".status}"):
        print(migratable, end="")
    else:
        print("" if migratable == "True" else "cannot migrate VMI: PVC rootdisk is not shared", end="")
elif verb == "get" and args[1] == "vmi":
    print("node01", end="")
elif verb == "delete" and args[1] == "vmim":
    if os.environ.get("FAKE_DELETE_FAILS") == "1":
        sys.exit("error: timed out waiting for the condition")
elif verb == "create":
    manifest = sys.stdin.read()
    assert "kind: VirtualMachineInstanceMigration" in manifest and "vmiName: " in manifest, manifest
    print("kubevirt-migrate-vm-x7k2p", end="")
elif verb == "get" and args[1] == "vmim":
    if jsonpath == "{.status.phase}":
        polls = bump("vmim")
        phases = ["Pending", "Scheduling", "PreparingTarget", "Running"]
        if scenario == "timeout" or polls < len(phases):
            print(phases[min(polls, len(phases) - 1)], end="")
        else:
            print("Succeeded" if scenario == "success" else "Failed", end="")
    elif jsonpath == "{.status.migrationState.targetNode}":
        print("" if scenario == "timeout" else "node02", end="")
    elif jsonpath == "{.status.migrationState.failureReason}":
        print("Live migration failed error encountered during MigrateToURI3 libvirt api call", end="")
else:
    sys.exit(f"fake kubectl: unexpected call {sys.argv[1:]}")
