"""Philox4x32-10 in Triton: the counter-based generator of csrc/include/gentk/philox.h, so
Triton kernels draw the same noise as the C++ and CUDA ones for a (seed, stream) pair."""
import triton
import triton.language as tl


@triton.jit
def philox_at(seed_ptr, counter):
    """The four 32-bit Philox words of 64-bit ``counter`` (int64, any block shape) under the
    int64[2] (seed, stream) pair at ``seed_ptr``: key (seed lo, seed hi), counter
    (counter lo, counter hi, stream lo, stream hi), as gentk::philox_at."""
    seed = tl.load(seed_ptr)  # int64 bit patterns, read as unsigned halves
    stream = tl.load(seed_ptr + 1)
    k0 = (seed & 0xFFFFFFFF).to(tl.uint32)
    k1 = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    c0 = (counter & 0xFFFFFFFF).to(tl.uint32)
    c1 = ((counter >> 32) & 0xFFFFFFFF).to(tl.uint32)
    zero = tl.zeros_like(c0)
    c2 = zero + (stream & 0xFFFFFFFF).to(tl.uint32)
    c3 = zero + ((stream >> 32) & 0xFFFFFFFF).to(tl.uint32)
    m0 = tl.full([], 0xD2511F53, tl.uint32)
    m1 = tl.full([], 0xCD9E8D57, tl.uint32)
    w0 = tl.full([], 0x9E3779B9, tl.uint32)
    w1 = tl.full([], 0xBB67AE85, tl.uint32)
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, m0)
        lo0 = c0 * m0
        hi1 = tl.umulhi(c2, m1)
        lo1 = c2 * m1
        c0 = hi1 ^ c1 ^ k0
        c1 = lo1
        c2 = hi0 ^ c3 ^ k1
        c3 = lo0
        k0 = k0 + w0
        k1 = k1 + w1
    return c0, c1, c2, c3
