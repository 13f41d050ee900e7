"""DDP through torchrun on 2 CPU processes (gloo): the parameters stay identical across
ranks and match one process trained on the same global batch."""
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

WORKER = os.path.join(os.path.dirname(__file__), "ddp_worker.py")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_ddp_two_processes_match_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          WORKER, str(two)], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    sys.path.insert(0, os.path.dirname(WORKER))
    import ddp_worker

    ddp_worker.main(str(one))  # the single-process reference, in this process (no torchrun variables set)
    for model in ("toy", "vae"):
        r0, r1 = torch.load(two / f"{model}_rank0.pt"), torch.load(two / f"{model}_rank1.pt")
        for name in r0:
            assert torch.equal(r0[name], r1[name]), f"{model} {name} differs across ranks"
    single, ranked = torch.load(one / "toy_rank0.pt"), torch.load(two / "toy_rank0.pt")
    for name, value in single.items():
        torch.testing.assert_close(ranked[name], value, rtol=1e-5, atol=1e-6)
    # the run did train: parameters moved from the seed-0 initialisation
    initial = ddp_worker.params(ddp_worker.ToyAutoencoder())
    assert any((initial[n] - single[n]).abs().max() > 1e-3 for n in single)
    # only rank 0 wrote checkpoints and logs
    assert sorted(os.listdir(two / "toy" / "checkpoints")) == ["step_00000006.pt"]
    from gentk.train import checkpoint as ckpt

    saved = ckpt.load(two / "toy" / "checkpoints" / "step_00000006.pt")
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2
