"""A subprocess for tests/test_faults.py: publish a folder (as ``export`` does) or save a checkpoint,
with ``ACTIONNET_EDGE_FAULT`` set by the test to kill it at a named point.

    python _fault_driver.py publish OUT TAG FORCE [GO_FILE]
    python _fault_driver.py checkpoint PATH TAG
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from actionnet_edge.errors import ActionNetError
from actionnet_edge.fsutil import fault_point, publish_dir, raise_on_sigterm, sweep_stale, temp_dir_for

FILES = 8


def publish(out: Path, tag: str, force: bool, go: Path | None) -> None:
    sweep_stale(out.parent)
    tmp = temp_dir_for(out)
    try:
        for i in range(FILES):
            (tmp / f"part{i}.txt").write_text(tag * 20000)
        fault_point("driver.written")
        while go is not None and not go.exists():
            time.sleep(0.005)
        publish_dir(tmp, out, force)
        fault_point("driver.published")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def checkpoint(path: Path, tag: str) -> None:
    import torch

    from actionnet_edge.checkpoint import atomic_save

    atomic_save({"tag": tag, "w": torch.full((256, 256), float(len(tag)))}, path)


if __name__ == "__main__":
    raise_on_sigterm()
    try:
        if sys.argv[1] == "publish":
            publish(Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", Path(sys.argv[5]) if len(sys.argv) > 5 else None)
        else:
            checkpoint(Path(sys.argv[2]), sys.argv[3])
    except ActionNetError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
