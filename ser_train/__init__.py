"""Training: synthetic voices, CREMA-D-style datasets, preset checkpoints, train, evaluate."""

import atexit
import os
import shutil
import tempfile

# librosa's compiled functions (numba, cache=True) are cached beside librosa by default, and that cache is not
# safe when two processes compile at once (numba/numba#10128): two leave-one-generator-out folds started side by
# side wrote a torn cache here, and every later `ser-serve train` segfaulted on its first prosody measure. So each
# process compiles into a folder of its own (seconds, once per process) unless the user chose a cache folder.
if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ser-numba-")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)
