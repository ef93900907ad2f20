"""Each training process keeps librosa's compiled code in a cache folder of its own (ser_train/__init__.py).

numba's shared on-disk cache tears when two processes compile at once
(numba/numba#10128), and every later process then segfaults on first use: seen
here with two leave-one-generator-out folds started side by side.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

SHOW = ("import os, json, ser_train, librosa, numba; "
        "print(json.dumps([os.environ['NUMBA_CACHE_DIR'], numba.config.CACHE_DIR]))")


def cache_dirs(**chosen) -> list[str]:
    """(NUMBA_CACHE_DIR, numba's cache folder) in a new process; this process's own folder is not passed on."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | chosen
    done = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_two_processes_get_two_cache_folders_that_numba_uses_and_that_go_away_after():
    (first, numba_first), (second, numba_second) = cache_dirs(), cache_dirs()
    assert first != second
    assert numba_first == first and numba_second == second
    assert Path(first).name.startswith("ser-numba-")
    assert not Path(first).exists() and not Path(second).exists()


def test_a_cache_folder_the_user_chose_is_kept(tmp_path):
    assert cache_dirs(NUMBA_CACHE_DIR=str(tmp_path)) == [str(tmp_path), str(tmp_path)]
    assert tmp_path.exists()
