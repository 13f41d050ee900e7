"""Every registered gentk:: op (the compiled ones; not the Triton twins) checks the size,
dtype and device of every tensor it reads, forward and backward: registered ops are public
(torch.compile, opcheck and users call them directly), and a backward handed a grad of the
wrong size or dtype must raise, naming the argument, never read out of bounds or garbage."""
import pytest
import torch

import gentk

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")
ops = torch.ops.gentk


def _f(*shape):
    return torch.randn(*shape)


def _seed():
    return torch.tensor([1234, 5], dtype=torch.int64)


def _valid_calls():
    """For each op, calls that succeed: (args, names of tensors whose size alone is free,
    names of tensors any floating dtype is valid for). The tensors cross-reference each other,
    so that a wrong size shows."""
    mu, m2 = _f(2, 3), _f(2, 3)
    logits = _f(4, 5)
    x = _f(2, 3, 4, 4)
    stats = torch.rand(2, 3) + 0.5
    real, fake = _f(3, 1, 2, 2), _f(3, 1, 2, 2)
    target = torch.rand(3, 1, 2, 2)
    one = torch.tensor(1.0)
    norm_free = {"running_mean", "running_var"}
    return {
        "reparameterize": [((mu, m2, _f(2, 3), None), set(), set()), ((mu, m2, None, _seed()), set(), set())],
        "reparameterize_backward": [((mu, m2, _f(2, 3), None), set(), set()),
                                    ((mu, m2, None, _seed()), set(), set())],
        "gaussian_kl": [((mu, m2, True, 0.5), set(), set())],
        "gaussian_kl_backward": [((one, mu, m2, 0.5), set(), set()), ((_f(2, 3), mu, m2, 1.0), set(), set())],
        "reparameterize_kl": [((mu, m2, None, _seed(), True, 0.5), set(), set())],
        "reparameterize_kl_backward": [((_f(2, 3), one, mu, m2, None, _seed(), 0.5), set(), set()),
                                       ((_f(2, 3), _f(2, 3), mu, m2, _f(2, 3), None, 1.0), set(), set())],
        "gumbel_softmax": [((logits, _f(4, 5), None, 0.5, True), set(), set()),
                           ((logits, None, _seed(), 0.5, False), {"logits"}, set())],
        "gumbel_softmax_backward": [((_f(4, 5), torch.rand(4, 5), logits, None, None, 0.5), set(), set()),
                                    ((_f(4, 5), None, logits, None, _seed(), 0.5), set(), set()),
                                    ((_f(4, 5), None, logits, _f(4, 5), None, 0.5), set(), set())],
        "categorical_kl_uniform": [((logits, True, 0.25), {"logits"}, set())],
        "categorical_kl_uniform_backward": [((one, logits, 0.25), {"logits"}, set()), ((_f(4), logits, 1.0), set(), set())],
        "instance_norm": [((x, _f(3), _f(3), None, None, 1e-5, 1, 0.0, _f(2, 3, 4, 4)), set(), set()),
                          ((x, _f(3), _f(3), _f(3), torch.rand(3) + 0.5, 1e-5, 0, 0.0, None), set(), norm_free)],
        "instance_norm_backward": [((_f(2, 3, 4, 4), x, _f(3), _f(3), _f(2, 3), stats, 1e-5, True, 1, 0.0),
                                    set(), set())],
        "discriminator_loss": [((real, fake, "bce", 1.0, 0.0, "none"), set(), set())],
        "discriminator_loss_backward": [((one, real, fake, "bce", 1.0, 0.0, "mean"), set(), set()),
                                        ((_f(3, 1, 2, 2), real, fake, "hinge", 1.0, 0.0, "none"), set(), set())],
        "discriminator_loss_with_grad": [((real, fake, "lsgan", 1.0, 0.0, "none"), set(), set())],
        "generator_loss": [((fake, "bce", "mean"), {"fake_logits"}, set())],
        "generator_loss_backward": [((one, fake, "bce", "mean"), {"fake_logits"}, set()),
                                    ((_f(3, 1, 2, 2), fake, "lsgan", "none"), set(), set())],
        "generator_loss_with_grad": [((fake, "bce", "mean"), {"fake_logits"}, set())],
        "bernoulli_recon": [((real, target, "batchsum"), set(), set())],
        "bernoulli_recon_backward": [((one, real, target, "batchsum"), set(), set()),
                                     ((_f(3, 1, 2, 2), real, target, "none"), set(), set())],
        "bernoulli_recon_with_grad": [((real, target, "mean"), set(), set())],
        "l1_loss": [((real, fake, 2.0, "mean"), set(), set())],
        "l1_loss_backward": [((one, real, fake, 2.0, "mean"), set(), set()),
                             ((_f(3, 1, 2, 2), real, fake, 2.0, "none"), set(), set())],
        "gp_interpolate": [((real, fake, _seed()), set(), set())],
        "gp_interpolate_backward": [((_f(3, 4), _seed()), {"grad"}, set())],
        "grad_norm_penalty": [((_f(3, 4), 1.0, False), {"grads"}, set())],
        "grad_norm_penalty_backward": [((one, _f(3, 4), 1.0, False), {"grads"}, set())],
    }


def _registered_ops():
    names = (n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("gentk::"))
    return sorted(n for n in names if not n.endswith("_triton"))


def _tensor_args(op, args):
    schema = getattr(ops, op).default._schema
    return [(i, a.name) for i, (a, v) in enumerate(zip(schema.arguments, args)) if isinstance(v, torch.Tensor)]


def _wrong_versions(t, free_size, any_float, others, other_floats):
    """(what, tensor) pairs the op must refuse in place of t. Without other tensors in the
    call, t may be on any device (a meta call is a valid one); without other floating ones,
    of any size and floating dtype."""
    if t.dtype == torch.int64:  # a seed
        return [("size", torch.zeros(3, dtype=torch.int64)), ("dtype", t.to(torch.int32)),
                ("dtype", t.to(torch.float64)), ("device", t.to("meta"))]
    wrong = [("dtype", t.to(torch.int32))]
    if others:
        wrong.append(("device", t.to("meta")))
    if other_floats and not any_float:
        wrong.append(("dtype", t.to(torch.float64)))  # the others are float32
    if other_floats and not free_size:
        wrong.append(("size", torch.randn(t.numel() + 3, 2)))
    return wrong


def test_every_registered_op_is_covered():
    assert sorted(_valid_calls()) == _registered_ops()


@pytest.mark.parametrize("op", sorted(_valid_calls()))
def test_wrong_size_dtype_or_device_is_refused_naming_the_argument(op):
    for args, free, any_float in _valid_calls()[op]:
        getattr(ops, op)(*args)  # the valid call runs
        tensors = _tensor_args(op, args)
        for i, name in tensors:
            floats = [j for j, _ in tensors if args[j].is_floating_point()]
            wrong = _wrong_versions(args[i], name in free, name in any_float, len(tensors) > 1,
                                    len(set(floats) - {i}) > 0)
            for what, bad in wrong:
                broken = list(args)
                broken[i] = bad
                with pytest.raises(RuntimeError, match=rf"gentk::{op}: .*\b{name}\b") as info:
                    getattr(ops, op)(*broken)
                assert len(str(info.value).strip().splitlines()) == 1, (name, what, str(info.value))


def test_huge_op_with_short_grad_raises_instead_of_reading_out_of_bounds():
    """The issue's case: a 3-element grad for a 4M-element mu (segfaulted)."""
    mu = torch.zeros(4_000_000)
    with pytest.raises(RuntimeError, match="grad_kl"):
        ops.reparameterize_kl_backward(mu, torch.ones(3), mu, mu, None, _seed(), 1.0)
    with pytest.raises(RuntimeError, match="grad_z"):
        ops.reparameterize_kl_backward(torch.ones(3), torch.ones(()), mu, mu, None, _seed(), 1.0)


def test_instance_norm_refuses_what_torch_refuses():
    """Mixed-dtype weights and running statistics that require grad: refused by torch's
    F.instance_norm, so by the compiled op too (with the same kind of error)."""
    x = torch.randn(2, 3, 4, 4)
    w64 = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        torch.nn.functional.instance_norm(x, weight=w64)
    with pytest.raises(RuntimeError, match="weight has dtype Double but x is Float"):
        ops.instance_norm(x, w64, None, None, None, 1e-5, 0, 0.0, None)
    with pytest.raises(RuntimeError, match="bias has dtype Half but x is Float"):
        ops.instance_norm(x, None, torch.ones(3, dtype=torch.half), None, None, 1e-5, 0, 0.0, None)
    # float32 parameters for float16 / bfloat16 x are mixed precision, which torch accepts too
    ops.instance_norm(x.half(), torch.ones(3), torch.zeros(3), None, None, 1e-5, 0, 0.0, None)
    rm, rv = torch.zeros(3, requires_grad=True), torch.ones(3)
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.nn.functional.instance_norm(x, running_mean=rm, running_var=rv, use_input_stats=False)
    with pytest.raises(RuntimeError, match="running_mean requires grad"):
        ops.instance_norm(x, None, None, rm, rv, 1e-5, 0, 0.0, None)
