"""The bench's worker processes run with glibc's malloc keeping freed memory (GLIBC_TUNABLES)."""
import json
import platform
import subprocess
import sys

import pytest

from actionnet_edge.bench.runtimes import KEEP_FREED_MEMORY, allocator_note, worker_env

PROBE = r"""
import json, resource, torch
for _ in range(15):  # glibc's bins settle within a few rounds
    a = torch.ones(1 << 24); del a  # 64 MiB: above any mmap threshold (torch asks for no huge pages)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = torch.ones(1 << 24); del a
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _faults(env: dict) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["faults"]


@pytest.mark.skipif(not GLIBC, reason="glibc's tunables only")
def test_worker_env_reuses_freed_blocks_instead_of_faulting_them_in(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    env = worker_env(2)
    assert env["GLIBC_TUNABLES"] == KEEP_FREED_MEMORY and env["OMP_NUM_THREADS"] == "2"
    default = {k: v for k, v in env.items() if k != "GLIBC_TUNABLES"}
    pages = 5 * (64 << 20) // 4096  # five 64 MiB blocks, 4 KiB pages
    assert _faults(default) > 0.9 * pages  # glibc's default: every block mmap'ed and faulted in anew
    assert _faults(env) < 0.01 * pages  # kept: once settled, freed blocks come back without a fault


def test_a_users_tunables_are_kept_and_reported(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")
    env = worker_env(1)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=1"
    if GLIBC:
        assert allocator_note(env) == "glibc malloc with GLIBC_TUNABLES=glibc.malloc.arena_max=1"
        assert allocator_note({}) == "glibc malloc defaults"
