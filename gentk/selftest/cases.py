"""The selftest's cases, per op family and backend, each run through the public gentk
function under ``gentk.use_backend``:

- parity with the reference (the same function under backend ``torch``, in float64 on the
  same values) at odd and prime sizes, 1x1, empty and non-contiguous inputs (channels_last
  for instance norm), every dtype, outputs and every gradient, within the family's
  tolerance table;
- noise statistics of the Philox ops: mean and variance, finite noise (no uniform at 0 or
  1 before a log), two calls differ, the same seed repeats, backward regenerates the
  forward's noise;
- forward+backward timings at the benchmark shapes (benchmarks/ops/*.py): CUDA events after
  warm-up on a GPU, perf_counter on CPU; the ``torch`` group times the reference eagerly
  and, with ``compile``, under torch.compile.

:func:`build` only makes closures: nothing touches a device until a case runs (in the
child process, see runner.py).
"""
import dataclasses
import math
import statistics
import time
from typing import Callable, Optional

import torch

import gentk

FAMILIES = ("gaussian", "gumbel", "instance_norm", "losses")
F16, BF16, F32, F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64

# (rtol, atol) per family and dtype; atol is relative to the largest |expected| value.
TOLERANCES = {
    "gaussian": {F64: (1e-12, 1e-12), F32: (1e-5, 1e-5), F16: (2e-3, 2e-3), BF16: (1.6e-2, 1.6e-2)},
    "gumbel": {F64: (1e-10, 1e-12), F32: (2e-5, 1e-5), F16: (4e-3, 2e-3), BF16: (2e-2, 1.6e-2)},
    "instance_norm": {F64: (1e-9, 1e-10), F32: (1e-4, 2e-5), F16: (4e-3, 4e-3), BF16: (2e-2, 2e-2)},
    "losses": {F64: (1e-10, 1e-12), F32: (2e-5, 1e-5), F16: (4e-3, 2e-3), BF16: (2e-2, 1.6e-2)},
}


@dataclasses.dataclass
class Case:
    name: str
    family: str
    backend: str
    kind: str  # parity | noise | timing
    run: Callable[[], Optional[dict]]

    @property
    def group(self):
        return (self.family, self.backend)


def dtypes(device):
    return [F32, F64] if torch.device(device).type == "cpu" else [F32, F16, BF16]


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def build(device, families, backends, timing=True, compile=False):
    """The cases of ``families`` for ``backends`` (plus ``torch`` for the reference's
    timings) on ``device``, grouped by (family, backend)."""
    cases = []
    for family in families:
        for backend in backends:
            for kind, name, run in _FAMILY_CASES[family](device, backend):
                if kind == "timing" and not timing:
                    continue
                cases.append(Case(f"{family}/{backend}/{name}", family, backend, kind, run))
        if timing:
            for name, run in _reference_timings(family, device, compile):
                cases.append(Case(f"{family}/torch/{name}", family, "torch", "timing", run))
    return cases


def healthy():
    """False when the device is unusable after an error (a sticky CUDA error)."""
    if not torch.cuda.is_initialized():
        return True
    try:
        torch.cuda.synchronize()
        torch.zeros(1, device="cuda").add_(1).item()
        return True
    except Exception:
        return False


# ---- comparing with the reference -----------------------------------------------------

def _tensor(shape, seed, dtype, device, layout="contiguous", scale=1.0, shift=0.0, requires_grad=True):
    """A seeded tensor rounded to ``dtype``; ``transposed``: a non-contiguous view with that shape."""
    g = torch.Generator().manual_seed(seed)
    if layout == "transposed":
        base = torch.randn(shape[:-2] + (shape[-1], shape[-2]), generator=g, dtype=F64)
        t = (base * scale + shift).to(device, dtype).transpose(-1, -2)
    else:
        t = (torch.randn(shape, generator=g, dtype=F64) * scale + shift).to(device, dtype)
        if layout == "channels_last":
            t = t.contiguous(memory_format=torch.channels_last)
    return t.detach().requires_grad_(requires_grad)


def _reference_copy(value):
    if not isinstance(value, torch.Tensor):
        return value
    return value.detach().to(F64, copy=True).requires_grad_(value.requires_grad)


def _flat(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _assert_close(got, want, dtype, tol, what):
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if got.numel() == 0:
        return
    rtol, atol = tol
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    finite = w[torch.isfinite(w)]
    scale = finite.abs().max().item() if finite.numel() else 1.0
    allowed = atol * scale + rtol * w.abs() + torch.finfo(dtype).tiny
    ok = ((g - w).abs() <= allowed) | (g == w) | (torch.isnan(g) & torch.isnan(w))
    if not bool(ok.all()):
        bad = (~ok).nonzero()[0].tolist()
        raise AssertionError(
            f"{what}: {int((~ok).sum())} of {w.numel()} elements differ; at {bad}: got {g[tuple(bad)].item():.6g}, "
            f"expected {w[tuple(bad)].item():.6g} (rtol {rtol}, atol {atol} x {scale:.3g})"
        )


def _parity(family, dtype, backend, fn, make, keep_format=False):
    """A case: ``fn(**make())`` on ``backend`` against the reference, outputs and gradients."""
    tol = TOLERANCES[family][dtype]

    def run():
        kwargs = make()
        ref_kwargs = {k: _reference_copy(v) for k, v in kwargs.items()}
        with gentk.use_backend(backend):
            got = _flat(fn(**kwargs))
        with gentk.use_backend("torch"):
            want = _flat(fn(**ref_kwargs))
        if got[0].dtype != dtype:
            raise AssertionError(f"output 0 is {got[0].dtype}, expected {dtype}")
        if keep_format and not got[0].is_contiguous(memory_format=torch.channels_last):
            raise AssertionError("output does not keep the input's channels_last memory format")
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, dtype, tol, f"output {i}")
        leaves = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.requires_grad]
        pairs = [(g, w) for g, w in zip(got, want) if w.requires_grad]
        if not leaves or not pairs:
            return None
        for i, (g, _) in enumerate(pairs):
            if not g.requires_grad:
                raise AssertionError(f"output {i} has no gradient")
        gen = torch.Generator().manual_seed(99)
        cots = [torch.randn(w.shape, generator=gen, dtype=F64).to(g.dtype) for g, w in pairs]
        grads = torch.autograd.grad([g for g, _ in pairs], [kwargs[k] for k in leaves],
                                    [c.to(g.device) for c, (g, _) in zip(cots, pairs)], allow_unused=True)
        expected = torch.autograd.grad([w for _, w in pairs], [ref_kwargs[k] for k in leaves],
                                       [c.to(w.device, F64) for c, (_, w) in zip(cots, pairs)], allow_unused=True)
        for k, a, b in zip(leaves, grads, expected):
            zero = torch.zeros_like(kwargs[k])
            _assert_close(zero if a is None else a, zero if b is None else b, dtype, tol, f"gradient of {k}")
        return None

    return run


def _parity_cases(family, device, backend, ops, layouts):
    """("parity", name, run) for every op x layout x dtype; ``ops``: name -> (fn, make(shape, layout,
    dtype)); ``layouts``: label -> (shape, layout) or a dict per op name."""
    out = []
    for op, (fn, make) in ops.items():
        for label, (shape, layout) in (layouts[op] if op in layouts else layouts["*"]).items():
            for dtype in dtypes(device):
                out.append(("parity", f"{op}[{_dtype_name(dtype)},{label}]", _parity(
                    family, dtype, backend, fn,
                    lambda make=make, shape=shape, layout=layout, dtype=dtype: make(shape, layout, dtype),
                    keep_format=layout == "channels_last")))
    return out


# ---- noise statistics -------------------------------------------------------------------

def _check_stat(what, value, expected, bound):
    if not abs(value - expected) <= bound:
        raise AssertionError(f"{what} is {value:.5g}, expected {expected:.5g} +- {bound:.3g}")


def _check_repeats(draw, what):
    torch.manual_seed(1234)
    first = draw()
    second = draw()
    torch.manual_seed(1234)
    again = draw()
    if torch.equal(first, second):
        raise AssertionError(f"{what}: two calls drew the same noise")
    if not torch.equal(first, again):
        raise AssertionError(f"{what}: the same seed did not repeat the noise")
    return first


def _finite(t, what):
    if not bool(torch.isfinite(t).all()):
        raise AssertionError(f"{what}: {int((~torch.isfinite(t)).sum())} values are not finite "
                             "(a uniform at 0 or 1 reached a log)")


# ---- gaussian -------------------------------------------------------------------------------

def _gaussian(device, backend):
    def make(with_eps):
        def inputs(shape, layout, dtype):
            kw = {"mu": _tensor(shape, 1, dtype, device, layout),
                  "logvar": _tensor(shape, 2, dtype, device, layout, scale=0.5)}
            if with_eps:
                kw["eps"] = _tensor(shape, 3, dtype, device, layout)
            return kw
        return inputs

    ops = {
        "reparameterize": (lambda mu, logvar, eps: gentk.reparameterize(mu, logvar, eps=eps), make(True)),
        "reparameterize_kl": (lambda mu, logvar, eps: gentk.reparameterize_kl(mu, logvar, eps=eps), make(True)),
        **{f"gaussian_kl[{r}]": (lambda mu, logvar, r=r: gentk.gaussian_kl(mu, logvar, reduction=r), make(False))
           for r in ("batchmean", "sum", "none")},
    }
    layouts = {"*": {"1x1": ((1, 1), "contiguous"), "3x7": ((3, 7), "contiguous"),
                     "131x257": ((131, 257), "contiguous"), "0x7": ((0, 7), "contiguous"),
                     "11x37-transposed": ((11, 37), "transposed")}}
    out = _parity_cases("gaussian", device, backend, ops, layouts)
    for dtype in dtypes(device):
        out.append(("noise", f"reparameterize-noise[{_dtype_name(dtype)}]", _gaussian_noise(device, backend, dtype)))
    out += _timings("gaussian", device, backend)
    return out


def _gaussian_noise(device, backend, dtype):
    def run():
        n = 1 << 16
        mu = torch.zeros(n, dtype=dtype, device=device, requires_grad=True)
        logvar = torch.zeros(n, dtype=dtype, device=device, requires_grad=True)
        with gentk.use_backend(backend):
            for name, draw in (("reparameterize", lambda: gentk.reparameterize(mu, logvar)),
                               ("reparameterize_kl", lambda: gentk.reparameterize_kl(mu, logvar)[0])):
                z = _check_repeats(draw, name)  # with mu = 0, logvar = 0: z is the noise
                _finite(z, name)
                z64 = z.detach().double()
                _check_stat(f"{name}: mean of the noise", z64.mean().item(), 0.0, 6 / math.sqrt(n))
                _check_stat(f"{name}: variance of the noise", z64.var().item(), 1.0, 6 * math.sqrt(2 / n))
                # dz/dlogvar = eps / 2: backward must regenerate the forward's noise
                (grad,) = torch.autograd.grad(z, logvar, torch.ones_like(z))
                _assert_close(grad, z.detach() / 2, dtype, TOLERANCES["gaussian"][dtype],
                              f"{name}: gradient of logvar against the noise / 2")
        return None

    return run


# ---- gumbel -----------------------------------------------------------------------------------

def _gumbels(shape, layout, dtype, device):
    g = torch.Generator().manual_seed(5)
    u = torch.rand(shape, generator=g, dtype=F64).clamp(1e-12, 1 - 1e-12)
    t = (-torch.log(-torch.log(u))).to(device, dtype)
    return (t.t().contiguous().t() if layout == "transposed" else t).detach().requires_grad_()


def _gumbel(device, backend):
    def make(with_gumbels):
        def inputs(shape, layout, dtype):
            kw = {"logits": _tensor(shape, 1, dtype, device, layout, scale=2.0)}
            if with_gumbels:
                kw["gumbels"] = _gumbels(shape, layout, dtype, device)
            return kw
        return inputs

    ops = {
        "gumbel_softmax[soft]": (lambda logits, gumbels: gentk.gumbel_softmax(logits, 0.67, gumbels=gumbels),
                                 make(True)),
        "gumbel_softmax[hard]": (lambda logits, gumbels: gentk.gumbel_softmax(logits, 1.0, True, gumbels=gumbels),
                                 make(True)),
        "gumbel_softmax[dim=0]": (lambda logits, gumbels: gentk.gumbel_softmax(logits, 0.67, dim=0, gumbels=gumbels),
                                  make(True)),
        "gumbel_softmax[sample=False]": (lambda logits: gentk.gumbel_softmax(logits, 0.67, sample=False), make(False)),
        **{f"categorical_kl_uniform[{r}]": (lambda logits, r=r: gentk.categorical_kl_uniform(logits, reduction=r),
                                            make(False)) for r in ("batchmean", "none")},
    }
    layouts = {"*": {"1x1": ((1, 1), "contiguous"), "3x7": ((3, 7), "contiguous"),
                     "13x257": ((13, 257), "contiguous"), "0x5": ((0, 5), "contiguous"),
                     "11x37-transposed": ((11, 37), "transposed")}}
    layouts["gumbel_softmax[dim=0]"] = {**layouts["*"], "5x0": ((5, 0), "contiguous")}
    del layouts["gumbel_softmax[dim=0]"]["0x5"]  # no categories along dim 0
    out = _parity_cases("gumbel", device, backend, ops, layouts)
    for dtype in dtypes(device):
        out.append(("noise", f"gumbel_softmax-noise[{_dtype_name(dtype)}]", _gumbel_noise(device, backend, dtype)))
    out += _timings("gumbel", device, backend)
    return out


def _gumbel_noise(device, backend, dtype):
    tol = TOLERANCES["gumbel"][dtype]

    def run():
        rows, tau = 1 << 15, 2.0
        logits = torch.zeros(rows, 2, dtype=dtype, device=device)
        with gentk.use_backend(backend):
            y = _check_repeats(lambda: gentk.gumbel_softmax(logits, tau), "gumbel_softmax")
            # log y1 - log y0 = (g1 - g0) / tau, a difference of Gumbels: Logistic(0, 1)
            d = tau * (y[:, 1].double().log() - y[:, 0].double().log())
            _finite(d, "gumbel_softmax")
            _check_stat("mean of g1 - g0", d.mean().item(), 0.0, 6 * math.sqrt(math.pi ** 2 / 3 / rows))
            fourth = 7 * math.pi ** 4 / 15 - (math.pi ** 2 / 3) ** 2
            _check_stat("variance of g1 - g0", d.var().item(), math.pi ** 2 / 3, 6 * math.sqrt(fourth / rows))
            # Gumbel-max: the hard sample's category is drawn with probabilities softmax(logits)
            p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
            cat = p.log().to(device, dtype).expand(rows, 4).contiguous().requires_grad_()
            torch.manual_seed(99)
            hard = gentk.gumbel_softmax(cat, 1.0, True)
            if not (bool(((hard == 0) | (hard == 1)).all()) and bool((hard.sum(1) == 1).all())):
                raise AssertionError("gumbel_softmax(hard=True) did not return one-hot rows")
            freq = hard.detach().double().mean(0).cpu()
            for k in range(4):
                _check_stat(f"frequency of category {k}", freq[k].item(), p[k].item(),
                            6 * math.sqrt(p[k].item() * (1 - p[k].item()) / rows))
            # the hard sample's gradient is the soft sample's, with the same noise regenerated
            torch.manual_seed(99)
            soft = gentk.gumbel_softmax(cat, 1.0, False)
            cot = torch.randn(hard.shape, generator=torch.Generator().manual_seed(3), dtype=F64).to(device, dtype)
            (g_hard,) = torch.autograd.grad(hard, cat, cot)
            (g_soft,) = torch.autograd.grad(soft, cat, cot)
            _assert_close(g_hard, g_soft, dtype, tol, "gradient of the hard sample against the soft one's")
        return None

    return run


# ---- instance norm ------------------------------------------------------------------------------

def _instance_norm(device, backend):
    def make(affine=False, residual=False, running=False):
        def inputs(shape, layout, dtype):
            c = shape[1]
            kw = {"x": _tensor(shape, 1, dtype, device, layout, scale=2.0, shift=1.0)}
            if affine:
                kw["weight"] = _tensor((c,), 2, dtype, device, scale=0.5, shift=1.0)
                kw["bias"] = _tensor((c,), 3, dtype, device, scale=0.5)
            if residual:
                kw["residual"] = _tensor(shape, 4, dtype, device, layout)
            if running:
                kw["running_mean"] = _tensor((c,), 5, dtype, device, scale=0.1, requires_grad=False)
                kw["running_var"] = _tensor((c,), 6, dtype, device, scale=0.1, shift=1.0,
                                            requires_grad=False).abs_()
            return kw
        return inputs

    def train_with_stats(x, running_mean, running_var):
        return gentk.instance_norm(x, running_mean=running_mean, running_var=running_var), running_mean, running_var

    ops = {
        "instance_norm": (lambda x: gentk.instance_norm(x), make()),
        "instance_norm[affine,relu]": (lambda x, weight, bias: gentk.instance_norm(x, weight, bias, activation="relu"),
                                       make(affine=True)),
        "instance_norm[affine,leaky_relu,residual]": (
            lambda x, weight, bias, residual: gentk.instance_norm(x, weight, bias, activation="leaky_relu",
                                                                  negative_slope=0.2, residual=residual),
            make(affine=True, residual=True)),
        "instance_norm[running stats]": (train_with_stats, make(running=True)),
        "instance_norm[eval]": (
            lambda x, weight, bias, running_mean, running_var: gentk.instance_norm(
                x, weight, bias, running_mean, running_var, use_input_stats=False),
            make(affine=True, running=True)),
    }
    train = {"2x3x5x7": ((2, 3, 5, 7), "contiguous"), "2x3x5x7-channels_last": ((2, 3, 5, 7), "channels_last"),
             "2x3x7x5-transposed": ((2, 3, 7, 5), "transposed"), "0x3x4x4": ((0, 3, 4, 4), "contiguous"),
             "2x5x11": ((2, 5, 11), "contiguous")}
    layouts = {"*": train, "instance_norm[eval]": {**train, "1x1x1x1": ((1, 1, 1, 1), "contiguous")}}
    return _parity_cases("instance_norm", device, backend, ops, layouts) + _timings("instance_norm", device, backend)


# ---- losses -------------------------------------------------------------------------------------

def _critic(x):
    return torch.sin(x).flatten(1).sum(1)


def _losses(device, backend):
    def make(*names, target=False):
        def inputs(shape, layout, dtype):
            kw = {name: _tensor(shape, seed, dtype, device, layout, scale=3.0) for seed, name in enumerate(names)}
            if target:
                g = torch.Generator().manual_seed(9)
                kw["target"] = torch.rand(shape, generator=g, dtype=F64).to(device, dtype)
            return kw
        return inputs

    ops = {}
    for mode, reduction in (("bce", "mean"), ("bce", "sum"), ("bce", "none"), ("lsgan", "mean"), ("wgan", "mean"),
                            ("hinge", "mean"), ("hinge", "none")):
        ops[f"discriminator_loss[{mode},{reduction}]"] = (
            lambda real_logits, fake_logits, mode=mode, reduction=reduction: gentk.discriminator_loss(
                real_logits, fake_logits, mode, real_label=0.9, reduction=reduction),
            make("real_logits", "fake_logits"))
    for mode in ("bce", "lsgan", "wgan", "hinge"):
        ops[f"generator_loss[{mode}]"] = (lambda fake_logits, mode=mode: gentk.generator_loss(fake_logits, mode),
                                          make("fake_logits"))
    for reduction in ("batchsum", "mean", "none"):
        ops[f"bernoulli_recon[{reduction}]"] = (
            lambda logits, target, reduction=reduction: gentk.bernoulli_recon(logits, target, reduction),
            make("logits", target=True))
    ops["l1_loss[w=100]"] = (lambda input, target: gentk.l1_loss(input, target, weight=100.0),
                             make("input", target=True))
    ops["l1_loss[none]"] = (lambda input, target: gentk.l1_loss(input, target, "none"), make("input", target=True))
    ops["gradient_penalty[r1]"] = (lambda real: gentk.gradient_penalty(_critic, real, kind="r1"), make("real"))
    # real == fake: the penalty does not depend on the interpolation's noise, and real's
    # gradient is the sum of the two, alpha * g + (1 - alpha) * g
    ops["gradient_penalty[wgan-gp,real=fake]"] = (lambda real: gentk.gradient_penalty(_critic, real, real),
                                                  make("real"))
    layouts = {"*": {"1x1": ((1, 1), "contiguous"), "64x1": ((64, 1), "contiguous"),
                     "13x1x7x5": ((13, 1, 7, 5), "contiguous"), "0x3": ((0, 3), "contiguous"),
                     "7x13-transposed": ((7, 13), "transposed")}}
    out = _parity_cases("losses", device, backend, ops, layouts)
    for dtype in dtypes(device):
        out.append(("noise", f"gp_interpolate-noise[{_dtype_name(dtype)}]", _gp_noise(device, backend, dtype)))
    return out + _timings("losses", device, backend)


def _gp_noise(device, backend, dtype):
    def run():
        # the interpreter runs one program per row: Triton on CPU gets fewer rows
        n = 1 << (12 if backend == "triton" and torch.device(device).type == "cpu" else 16)
        real = torch.ones(n, 1, dtype=dtype, device=device)
        fake = torch.zeros(n, 1, dtype=dtype, device=device)
        seen = []

        def critic(x):  # x = alpha * 1 + (1 - alpha) * 0: the interpolation's alphas
            seen.append(x.detach().flatten())
            return x.flatten(1).sum(1)

        with gentk.use_backend(backend):
            alpha = _check_repeats(lambda: (gentk.gradient_penalty(critic, real, fake), seen[-1])[1],
                                   "gradient_penalty's interpolation").double()
        if not bool(((alpha >= 0) & (alpha <= 1)).all()):
            raise AssertionError("gradient_penalty: interpolation weights outside [0, 1]")
        _check_stat("mean of the interpolation weights", alpha.mean().item(), 0.5, 6 * math.sqrt(1 / 12 / n))
        _check_stat("variance of the interpolation weights", alpha.var().item(), 1 / 12,
                    6 * math.sqrt((1 / 80 - 1 / 144) / n))
        return None

    return run


# ---- timings ------------------------------------------------------------------------------------

def _timing_inputs(device):
    """op -> (fn, make()) at the benchmark shapes (benchmarks/ops/*.py), float32."""
    def t(shape, seed, scale=1.0, layout="contiguous", requires_grad=True):
        return lambda: _tensor(shape, seed, F32, device, layout, scale=scale, requires_grad=requires_grad)

    def rand(shape):
        return lambda: torch.rand(shape, generator=torch.Generator().manual_seed(9)).to(device)

    mu, lv = t((4096, 512), 1), t((4096, 512), 2, 0.5)
    return {
        "gaussian": {
            "reparameterize 4096x512": (lambda mu, logvar: gentk.reparameterize(mu, logvar), {"mu": mu, "logvar": lv}),
            "gaussian_kl 4096x512": (lambda mu, logvar: gentk.gaussian_kl(mu, logvar), {"mu": mu, "logvar": lv}),
            "reparameterize_kl 4096x512": (lambda mu, logvar: gentk.reparameterize_kl(mu, logvar),
                                           {"mu": mu, "logvar": lv}),
        },
        "gumbel": {
            "gumbel_softmax 8192x10": (lambda logits: gentk.gumbel_softmax(logits, 0.67),
                                       {"logits": t((8192, 10), 1, 2.0)}),
            "gumbel_softmax_hard 1024x1000": (lambda logits: gentk.gumbel_softmax(logits, 0.67, True),
                                              {"logits": t((1024, 1000), 1, 2.0)}),
            "categorical_kl_uniform 8192x10": (lambda logits: gentk.categorical_kl_uniform(logits),
                                               {"logits": t((8192, 10), 1, 2.0)}),
        },
        "instance_norm": {
            f"instance_norm_relu 8x256x64x64 {fmt}": (lambda x: gentk.instance_norm(x, activation="relu"),
                                                      {"x": t((8, 256, 64, 64), 1, layout=layout)})
            for fmt, layout in (("NCHW", "contiguous"), ("NHWC", "channels_last"))
        },
        "losses": {
            "discriminator_loss[bce] 256x1x64x64": (
                lambda real, fake: gentk.discriminator_loss(real, fake, "bce"),
                {"real": t((256, 1, 64, 64), 1), "fake": t((256, 1, 64, 64), 2)}),
            "generator_loss[bce] 256x1x64x64": (lambda fake: gentk.generator_loss(fake, "bce"),
                                                {"fake": t((256, 1, 64, 64), 2)}),
            "bernoulli_recon 256x784": (lambda logits, target: gentk.bernoulli_recon(logits, target),
                                        {"logits": t((256, 784), 1, 3.0), "target": rand((256, 784))}),
            "l1_loss[w=100] 16x3x128x128": (lambda input, target: gentk.l1_loss(input, target, weight=100.0),
                                            {"input": t((16, 3, 128, 128), 1), "target": rand((16, 3, 128, 128))}),
        },
    }


def _median_ms(step, device, warmup=3, min_repeats=10, budget_s=0.5):
    for _ in range(warmup):
        step()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    times, begin = [], time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - begin < budget_s and len(times) < 200):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _forward_backward(fn, makers, device):
    inputs = {k: make() for k, make in makers.items()}
    leaves = [v for v in inputs.values() if v.requires_grad]
    cots = {}

    def step():
        for v in leaves:
            v.grad = None
        outs = [o for o in _flat(fn(**inputs)) if o.requires_grad]
        if not cots:
            cots.update({i: torch.ones_like(o) if o.dim() == 0 else torch.randn_like(o) for i, o in enumerate(outs)})
        torch.autograd.backward(outs, [cots[i] for i in range(len(outs))])

    return step


def _timings(family, device, backend):
    def case(fn, makers):
        def run():
            step = _forward_backward(fn, makers, device)
            with gentk.use_backend(backend):
                return {"ms": _median_ms(step, device)}
        return run

    return [("timing", f"time {op}", case(fn, makers)) for op, (fn, makers) in _timing_inputs(device)[family].items()]


def _reference_timings(family, device, compile):
    def case(fn, makers):
        def run():
            with gentk.use_backend("torch"):
                result = {"ms": _median_ms(_forward_backward(fn, makers, device), device)}
                if compile:
                    compiled = torch.compile(fn, dynamic=False)
                    result["compile_ms"] = _median_ms(_forward_backward(compiled, makers, device), device)
            return result
        return run

    return [(f"time {op}", case(fn, makers)) for op, (fn, makers) in _timing_inputs(device)[family].items()]


_FAMILY_CASES = {"gaussian": _gaussian, "gumbel": _gumbel, "instance_norm": _instance_norm, "losses": _losses}
