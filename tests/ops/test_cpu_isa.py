"""A forced instruction set the CPU lacks must not crash gentk's kernels.

ATen honours ATEN_CPU_CAPABILITY=avx512 even on a CPU without AVX-512; gentk's kernel tables
then fall back to the best build the CPU can run (csrc/cpu/dispatch.h)."""
import os
import subprocess
import sys

import pytest

import gentk

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")

SCRIPT = """
import torch, gentk
gentk.set_backend("cpp")
mu = torch.randn(33, 17, requires_grad=True)
z, kl = gentk.reparameterize_kl(mu, torch.zeros(33, 17))
c = gentk.gumbel_softmax(torch.randn(9, 10), 0.67)
y = gentk.instance_norm(torch.randn(2, 3, 5, 7), activation="relu")
d = gentk.discriminator_loss(torch.randn(40), torch.randn(40), "bce")
(z.sum() + kl).backward()
assert torch.isfinite(mu.grad).all() and torch.isfinite(c).all() and torch.isfinite(y).all() and torch.isfinite(d)
"""


@pytest.mark.parametrize("isa", ["default", "avx2", "avx512"])
def test_forced_isa_runs(isa):
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(os.environ, ATEN_CPU_CAPABILITY=isa),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ATEN_CPU_CAPABILITY={isa}: rc {result.returncode}\n{result.stderr[-2000:]}"
