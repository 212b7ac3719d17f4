#!/usr/bin/env python3
"""A stand-in for ``kubectl`` that plays one KubeVirt migration (for scripts/ tests).

FAKE_SCENARIO: success | failure | timeout | missing | never-ready. Every call is appended to
FAKE_LOG as one JSON line; FAKE_STATE holds the poll count.
"""

import json
import os
import sys
from pathlib import Path

args = sys.argv[1:]
scenario = os.environ["FAKE_SCENARIO"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state = Path(os.environ["FAKE_STATE"])
polls = int(state.read_text()) if state.exists() else 0

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
    print("false" if jsonpath else "vm", end="")
elif verb == "patch":
    pass
elif verb == "wait":
    if scenario == "never-ready":
        sys.exit("error: timed out waiting for the condition")
elif verb == "get" and args[1] == "vmi":
    print("node01", end="")
elif verb == "create":
    manifest = sys.stdin.read()
    assert "kind: VirtualMachineInstanceMigration" in manifest and "vmiName: " in manifest, manifest
    print("kubevirt-migrate-vm-x7k2p", end="")
elif verb == "get" and args[1] == "vmim":
    if jsonpath == "{.status.phase}":
        state.write_text(str(polls + 1))
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
