"""ser_serve.allocator: a forward and backward pass's freed blocks are reused instead of being mapped and faulted in again."""

import subprocess
import sys

import pytest

from ser_serve.allocator import is_glibc

# Four forward and backward passes of a wav2vec2-like first convolution over 4 clips of 4 s (its output, about
# 100 MB, is above glibc's largest mmap threshold); prints the minor page faults they took.
STEPS = """
import resource, sys
import torch
if sys.argv[1] == "keep":
    from ser_serve.allocator import keep_freed_memory
    assert keep_freed_memory()
torch.set_num_threads(1)
clips, conv = torch.randn(4, 1, 64_000), torch.nn.Conv1d(1, 512, 10, 5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.nn.functional.gelu(conv(clips)).sum().backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def minor_faults(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", STEPS, mode], check=True, capture_output=True, text=True).stdout)


@pytest.mark.skipif(not is_glibc(), reason="libc is not glibc")
def test_training_steps_reuse_freed_blocks():
    default, kept = minor_faults("default"), minor_faults("keep")
    assert kept * 3 < default, (kept, default)
