"""keep_freed_memory: large blocks are reused instead of faulted in again (glibc only)."""
import json
import os
import subprocess
import sys

import pytest

from actionnet_edge.malloc import describe, keep_freed_memory

PROBE = r"""
import json, resource, torch
from actionnet_edge.malloc import keep_freed_memory
state = keep_freed_memory()
for _ in range(15):  # glibc's bins settle within a few rounds (seen: 7)
    a = torch.ones(1 << 24); del a  # 64 MiB: above any mmap threshold (torch asks for no huge pages)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = torch.ones(1 << 24); del a
print(json.dumps({"state": state, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(setting: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ACTIONNET_EDGE_MALLOC"}
    if setting:
        env["ACTIONNET_EDGE_MALLOC"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(keep_freed_memory() == "not glibc", reason="glibc's mallopt only")
def test_freed_blocks_are_reused_not_faulted_in_again():
    kept, default = _probe(None), _probe("default")
    assert kept["state"] == "kept" and default["state"] == "default"
    pages = 5 * (64 << 20) // 4096  # five 64 MiB blocks, 4 KiB pages
    assert default["faults"] > 0.9 * pages  # glibc's default: every block mmap'ed and faulted in anew
    assert kept["faults"] < 0.01 * pages  # kept: once settled, freed blocks come back without a fault


def test_describe_names_the_setting_and_the_switch():
    assert "M_MMAP_MAX=0" in describe("kept") and "ACTIONNET_EDGE_MALLOC=default" in describe("kept")
    assert "defaults" in describe("default")
