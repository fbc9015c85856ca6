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


#: Mills ratio M(t) = (1 - Phi(t)) / phi(t) on [k/2, (k + 1)/2), k < 16: polynomials of degree 12 in
#: s = t - (k + 1/2)/2, lowest power first (tests/mills_table.py makes them; relative error < 2e-16).
_MILLS = np.array((
    (1.0378245758537268, -0.7405438560365677, 0.42634430592229183, -0.2113192598522558, 0.09337862273996396, -0.03759492080047902, 0.013996648741738579, -0.004870824468511025, 0.0015973685031309699, -0.0004967831178396123, 0.00014730154984229037, -4.243206589135633e-05, 1.1572929215091937e-05),
    (0.7525711790634081, -0.43557161570244385, 0.21294623364328744, -0.09195398015670547, 0.0359951871314718, -0.012991517955725004, 0.004375258107778988, -0.001387153805592523, 0.00041686172801751214, -0.00011938109616285376, 3.272951470573611e-05, -8.73171077264514e-06, 2.2168951334593895e-06),
    (0.5784303460476311, -0.27696206744046115, 0.1161138808735273, -0.04393990544952653, 0.015297249765412066, -0.0049636686473752845, 0.0015154439920303255, -0.00043848058705681515, 0.0001209179367173366, -3.1924184940357944e-05, 8.100601150574065e-06, -2.0037255231865784e-06, 4.739097951257341e-07),
    (0.4643069280394422, -0.1874628759309762, 0.06812344758011689, -0.022748947555259247, 0.007078197339605106, -0.002072420441929782, 0.0005752435942076686, -0.0001522491788620224, 3.8600948534858083e-05, -9.410454545448569e-06, 2.213104531837883e-06, -5.08287097508026e-07, 1.1210646672238173e-07),
    (0.3851482907984346, -0.1334163457035221, 0.042480756482754956, -0.012611547872441646, 0.0035261934424407992, -0.0009355225253267146, 0.00023687796003221494, -5.750673422128547e-05, 1.3435977895128434e-05, -3.030550095575701e-06, 6.616817278546638e-07, -1.4134556898975177e-07, 2.9109769031531956e-08),
    (0.32767831469055203, -0.09888463460098185, 0.027872784768925983, -0.007411492162145265, 0.001872795330756768, -0.0004522610004960618, 0.00010484626321942834, -2.341911186901664e-05, 5.055463741573532e-06, -1.0573739697467524e-06, 2.1475643849959506e-07, -4.2749938512786615e-08, 8.23369641123943e-09),
    (0.28438214674849294, -0.075758023067398, 0.01908428588972472, -0.004578031308597588, 0.0010514210341956843, -0.0002321825894875077, 4.9471269722925114e-05, -1.020013781962928e-05, 2.040102895039469e-06, -3.9663777693838827e-07, 7.509927755046161e-08, -1.3959763569513395e-08, 2.5187383346869684e-09),
    (0.250761111443965, -0.05964583208513115, 0.013544620562361607, -0.0029511683254250533, 0.0006194348355044293, -0.00012565753845520067, 2.4703177714915355e-05, -4.71723179939459e-06, 8.766948645991046e-07, -1.5884516221361755e-07, 2.8101313461281727e-08, -4.88835133420789e-09, 8.277704314890253e-10),
    (0.2239905946538288, -0.048039972721227564, 0.009910355294305829, -0.0019736542401426007, 0.0003805811934249496, -7.123683361682111e-05, 1.2970775091772441e-05, -2.301577095098036e-06, 3.9863407463220694e-07, -6.74862000409992e-08, 1.1181335322789943e-08, -1.8242614335045337e-09, 2.90475123543375e-10),
    (0.20222323663305466, -0.039439625992990404, 0.007442506583175123, -0.0013625732409695236, 0.00024257092214247347, -4.2072272158382026e-05, 7.121271564848843e-06, -1.1780331845376714e-06, 1.9070174978066919e-07, -3.0244177297079174e-08, 4.704026934055687e-09, -7.214257077381615e-10, 1.0822763978979206e-10),
    (0.1842076773079702, -0.03290969413315648, 0.0057158915544493405, -0.0009670878240991483, 0.00015967011948220364, -2.5763939363451496e-05, 4.06823963727656e-06, -6.293830417800377e-07, 9.549733646386878e-08, -1.422457533162375e-08, 2.081766790211381e-09, -3.007779910295478e-10, 4.259634846844583e-11),
    (0.16907015040769408, -0.027846635155759063, 0.004475999131039728, -0.0007032133840935426, 0.00010813054312546493, -1.6292552224398637e-05, 2.408061305832618e-06, -3.4945710364940347e-07, 4.9835371219421766e-08, -6.989265226246771e-09, 9.646826802568094e-10, -1.3159418548766882e-10, 1.7627529302485006e-11),
    (0.15618421503397592, -0.023848656037650524, 0.003565057399330074, -0.0005223490972791868, 7.509388533378916e-05, -1.0602462788590555e-05, 1.4714154841701453e-06, -2.0087371664406668e-07, 2.699434493277363e-08, -3.5732138099930903e-09, 4.661641463830917e-10, -6.016582020039154e-11, 7.637773585010304e-12),
    (0.14509024128913092, -0.020640871298366226, 0.002882180012579449, -0.0003953854044849819, 5.333213307645538e-05, -7.078701243777155e-06, 9.251499468207338e-07, -1.191341577781928e-07, 1.512429797237633e-08, -1.893898646845498e-09, 2.3404289834985625e-10, -2.8638785568310912e-11, 3.4518045630733114e-12),
    (0.13544405309676344, -0.01803061504846504, 0.002361046997695948, -0.0003043414383898061, 3.864289234246352e-05, -4.836093781387122e-06, 5.968687378983761e-07, -7.268506176982559e-08, 8.737755124058133e-09, -1.0373678768458641e-09, 1.216812989011793e-10, -1.4144440777253824e-11, 1.621581145807302e-12),
    (0.12698323748543697, -0.015879909487863556, 0.001956969477247203, -0.0002377986797325773, 2.8507427329932257e-05, -3.3732235851195376e-06, 3.9415742420795046e-07, -4.550050683757366e-08, 5.1910620836183695e-09, -5.85529279214868e-10, 6.531979550053243e-11, -7.226489563382761e-12, 7.89404108762449e-13),
))
_INV_SQRT_2PI = 0.3989422804014327


@numba.njit(cache=True, inline="always")
def _ndtr(a):
    """Standard normal CDF: Phi(a) = phi(a) M(|a|) for a <= 0 and 1 - phi(a) M(|a|) for a > 0, with
    phi(a) = exp(-a^2/2)/sqrt(2 pi) and M the Mills ratio: for |a| < 8 the polynomial of the row of
    _MILLS picked by index (Estrin's scheme: a short dependency chain), beyond by Laplace's continued
    fraction.  exp(-a^2/2) is written as the printer writes a Phi gain's slope and computed on both
    paths, so that, inlined into a kernel that needs both, the compiler computes it once.  Accuracy:
    scipy.special.ndtr's or better (tests/test_numba_runtime.py: 40-digit references); equal to it
    within 3.4e-16 where neurons are.  Cost in the kernels' loop, with the slope (one thread,
    measured with process time): 10 ns against 17.5 ns with libm's erf/erfc."""
    e = math.exp(-1 / 2 * a ** 2)
    t = abs(a)
    if t < 8.0:
        k = int(t * 2.0)
        s = t - (k + 0.5) * 0.5
        s2 = s * s                     # Estrin's scheme: a short dependency chain
        s4 = s2 * s2
        m = ((_MILLS[k, 0] + _MILLS[k, 1] * s) + (_MILLS[k, 2] + _MILLS[k, 3] * s) * s2
             + ((_MILLS[k, 4] + _MILLS[k, 5] * s) + (_MILLS[k, 6] + _MILLS[k, 7] * s) * s2) * s4
             + ((_MILLS[k, 8] + _MILLS[k, 9] * s) + (_MILLS[k, 10] + _MILLS[k, 11] * s) * s2
                + _MILLS[k, 12] * s4) * (s4 * s4))
    else:
        # Laplace's continued fraction M(t) = 1/(t + 1/(t + 2/(t + 3/(t + ...)))), 40 terms: < 1e-16 at t >= 8
        m = t
        for j in range(40, 0, -1):
            m = t + j / m
        m = 1.0 / m
    q = e * _INV_SQRT_2PI * m          # e on both paths: the compiler shares it with the slope's exp
    return 1.0 - q if a > 0 else q


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
