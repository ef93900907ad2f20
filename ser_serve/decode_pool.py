"""A batch's uploads decoded in worker processes, so that decoding keeps up with a GPU.

Decoding an upload is many short Python-level steps (PyAV frames, VAD
frames, normalisation) that hold the GIL, so threads do not add up: on an
H200 host with 16 cores, one thread decoded 1,196 audio-s/s and 16 threads
518, while the model answered about 3,100 audio-s/s in bfloat16
(benchmarks/README.md, GPU). Processes share no GIL. On a CPU worker the
forward pass already uses every core, and decoding stays in the worker's own
process (``ser.decode_processes: 1``).

The processes are started once per worker (spawn: a worker with CUDA must
not fork) and hold a :class:`~ser_serve.classifier.UploadPreparer`; each
task sends a few uploads' bytes and gets back their features or errors. If
a decode process dies, the batch is decoded in the worker itself and the
pool is started again: no upload is lost to it. If the worker dies, its
decode processes end within a second or so.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from ser_serve.classifier import UploadPreparer

logger = logging.getLogger(__name__)

Prepared = tuple  # (features: np.ndarray, or the upload's error; milliseconds decoding, or None)

_preparer: UploadPreparer | None = None  # in a decode process: set once by _install


class DecodePool:
    """Prepares a batch's uploads ``processes`` at a time (1: in the calling process)."""

    def __init__(self, preparer: UploadPreparer, processes: int = 1):
        self.preparer = preparer
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def prepare_all(self, uploads: Sequence[bytes | bytearray | Exception]) -> list[Prepared]:
        """One (features | error, milliseconds) per upload, in order; an upload that is already an error stays so."""
        work = [index for index, upload in enumerate(uploads) if not isinstance(upload, Exception)]
        prepared: list[Prepared] = [(upload, None) if isinstance(upload, Exception) else None for upload in uploads]
        if self.processes > 1 and len(work) > 1:
            try:
                # A few uploads per message: one at a time, the messages cost more than they carry.
                chunk = max(1, len(work) // (self.processes * 2))
                results = list(self._executor().map(_prepare_here, [uploads[i] for i in work], chunksize=chunk))
            except BrokenProcessPool:
                logger.error("a decode process died: this batch is decoded in the worker, the pool is restarted")
                self.close()
                results = [prepare_one(self.preparer, uploads[i]) for i in work]
        else:
            results = [prepare_one(self.preparer, uploads[i]) for i in work]
        for index, result in zip(work, results):
            prepared[index] = result
        return prepared

    def pids(self) -> list[int]:
        """The decode processes' ids (empty until the first parallel batch, or when decoding in-process)."""
        return sorted(self._pool._processes) if self._pool is not None and self._pool._processes else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            context.set_executable(_python())
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_install,
                                             initargs=(self.preparer, os.getpid()))
        return self._pool


def prepare_one(preparer: UploadPreparer, upload: bytes | bytearray) -> Prepared:
    """One upload's features and decode milliseconds, or its error (one bad upload must not fail its neighbours)."""
    started = time.perf_counter()
    try:
        return preparer(upload), (time.perf_counter() - started) * 1000
    except Exception as exc:
        return exc, None


def _install(preparer: UploadPreparer, worker: int) -> None:
    global _preparer
    _preparer = preparer
    # The worker's pid comes from the worker: it may already be gone while this process starts.
    threading.Thread(target=_exit_with_parent, args=(worker,), name="ser-decode-orphan-check", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this decode process when its worker is gone: a worker killed outright (SIGKILL, OOM
    killer, a TorchServe restart) cannot shut its pool down, and its decoders would wait forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _prepare_here(upload: bytes | bytearray) -> Prepared:
    return prepare_one(_preparer, upload)


def _python() -> str:
    """The interpreter the decode processes run: this one, unless it is embedded (e.g. Triton's Python stub)."""
    if os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    return shutil.which("python3") or sys.executable
