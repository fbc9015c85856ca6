"""The numba run-time of the compiled particle step: the counter-based normal numbers and the scalar
special functions that every model's generated kernels call (derive/codegen_numba.py writes the
kernels; their source imports these names).  Written once here rather than in every generated module.

Philox4x32-10 (Salmon et al., SC'11) gives 128 bits per counter; the ziggurat method (Marsaglia &
Tsang 2000, 256 layers, numpy's tables) turns them into standard normal numbers.  The normal number
``slot`` of (population pop, step) under the key (k0, k1) depends on nothing else (not on chunks or
threads).  The compiled-step cache (solvers.particle_numba) is keyed by the kernels' source AND this
file's text: numba's own cache does not notice a change in a called function of another file.
No SymPy.
"""
import math

import numba
import numpy as np

#: Neurons per chunk: the unit of parallel work and of the partial sums (fixed: the sums do not depend
#: on the number of threads).
CHUNK = 4096
#: Normal numbers whose first Philox call is made in one vectorisable loop.
BLOCK = 256

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S21 = np.uint64(21)
_S11 = np.uint64(11)
_S16 = np.uint64(16)
_S8 = np.uint64(8)
_ONE = np.uint64(1)
_FF = np.uint64(0xFF)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_TWO_M53 = 1.0 / 9007199254740992.0
_SQRT1_2 = 0.7071067811865476
_LOG2 = 0.6931471805599453


@numba.njit(cache=True, inline="always")
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1) (uint64 holding 32 bits)."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def _ziggurat_tables():
    """Marsaglia & Tsang's 256-layer ziggurat of exp(-x^2/2) (tail start R, layer area
    V = R exp(-R^2/2) + integral_R^inf exp(-x^2/2) dx) with 52-bit integers: (KI, WI, FI), numpy's
    tables up to the last bits."""
    dn = tn = _ZIG_R
    m1 = 2.0 ** 52
    ki = np.zeros(256, np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    q = _ZIG_V / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m1)
    wi[0] = q / m1
    wi[255] = dn / m1
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m1)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi


_ZIG_R = 3.6541528853610088
_ZIG_V = _ZIG_R * math.exp(-0.5 * _ZIG_R * _ZIG_R) + math.sqrt(0.5 * math.pi) * math.erfc(_ZIG_R * _SQRT1_2)
_KI, _WI, _FI = _ziggurat_tables()


@numba.njit(cache=True)
def _uniform(c, d):
    """A uniform number in (0, 1) from 53 of the 64 bits (c, d) (uint64 holding 32 bits each)."""
    return (float((c << _S21) | (d >> _S11)) + 0.5) * _TWO_M53


@numba.njit(cache=True)
def _philox_block(buf, k0, k1, pop, step, slot0, count):
    """buf[:, i] = Philox4x32-10 at the counters (slot0 + i, pop, step mod 2^32, step div 2^32), i < count:
    the first attempt of ``count`` consecutive normals (independent counters: the loop vectorises,
    where one call alone is a chain of 10 dependent rounds)."""
    s = np.uint64(step)
    c2 = s & _MASK
    c3 = s >> _S32
    p = np.uint64(pop)
    for i in range(count):
        a, b, c, d = _philox(np.uint64(slot0 + i), p, c2, c3, k0, k1)
        buf[0, i] = a
        buf[1, i] = b
        buf[2, i] = c
        buf[3, i] = d


@numba.njit(cache=True)
def _normal_from(a, b, c, d, k0, k1, pop, step, slot):
    """The standard normal number ``slot`` of (population pop, step) under the key (k0, k1), given the
    output (a, b, c, d) of its first Philox call: the ziggurat's rectangle test here (99.3 %; small
    enough to be inlined), everything else in _ziggurat."""
    r = (a << _S32) | b
    idx = r & _FF
    r >>= _S8
    rabs = (r >> _ONE) & _MASK52
    x = float(rabs) * _WI[idx]
    if r & _ONE:
        x = -x
    if rabs < _KI[idx]:
        return x
    return _ziggurat(a, b, c, d, k0, k1, pop, step, slot)


@numba.njit(cache=True)
def _ziggurat(a, b, c, d, k0, k1, pop, step, slot):
    """The ziggurat method (Marsaglia & Tsang 2000) on Philox4x32-10 at the counters (slot,
    pop + 2^16 att, step mod 2^32, step div 2^32), att = 0, 1, ...; (a, b, c, d) the output of att = 0."""
    s = np.uint64(step)
    c0 = np.uint64(slot)
    c2 = s & _MASK
    c3 = s >> _S32
    p = np.uint64(pop)
    att = _ONE
    while True:
        r = (a << _S32) | b
        idx = r & _FF
        r >>= _S8
        rabs = (r >> _ONE) & _MASK52
        x = float(rabs) * _WI[idx]
        if r & _ONE:
            x = -x
        if rabs < _KI[idx]:
            return x
        if idx == 0:                                      # the tail beyond R
            u = _uniform(c, d)
            while True:
                a2, b2, c2_, d2 = _philox(c0, p | (att << _S16), c2, c3, k0, k1)
                att += _ONE
                xx = -math.log(u) / _ZIG_R
                yy = -math.log(_uniform(a2, b2))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if (rabs >> _S8) & _ONE else _ZIG_R + xx
                u = _uniform(c2_, d2)
        elif (_FI[idx - 1] - _FI[idx]) * _uniform(c, d) + _FI[idx] < math.exp(-0.5 * x * x):
            return x
        a, b, c, d = _philox(c0, p | (att << _S16), c2, c3, k0, k1)
        att += _ONE


@numba.njit(cache=True)
def _normal(k0, k1, pop, step, slot):
    """The standard normal number ``slot`` of (population pop, step) (as the kernels draw it)."""
    s = np.uint64(step)
    a, b, c, d = _philox(np.uint64(slot), np.uint64(pop), s & _MASK, s >> _S32, k0, k1)
    return _normal_from(a, b, c, d, k0, k1, pop, step, slot)


@numba.njit(cache=True)
def _ndtr(a):
    """Standard normal CDF (the formula of scipy.special.ndtr, cephes)."""
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


@numba.njit(cache=True)
def _expit(x):
    """Logistic 1 / (1 + exp(-x)) without overflow (as scipy.special.expit)."""
    if x < 0:
        e = math.exp(x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(-x))


@numba.njit(cache=True)
def _logaddexp(a, b):
    """log(exp(a) + exp(b)) (as numpy.logaddexp)."""
    if a == b:
        return a + _LOG2
    d = a - b
    if d > 0:
        return a + math.log1p(math.exp(-d))
    if d <= 0:
        return b + math.log1p(math.exp(d))
    return d
