"""Code generation of the compiled particle step: a Derivation -> the numba source of one fused step.

The source is stored in the generated module as the string NUMBA_SOURCE (a section of generated/NAME.py,
not a second file): importing the generated module stays free of numba (and fast), ``balkin generate``
and its --check and staleness machinery cover it unchanged, and the compiled cache is keyed by the hash
of exactly this text (solvers.particle_numba materialises it next to the generated module, in
__numba_cache__/NAME-<sha256[:16]>/, and lets numba cache the machine code there).

Per population the source holds two kernels, each one parallel pass (prange over fixed chunks of CHUNK
neurons) over the population's neurons, with the scheme of solvers.particle_steps and
solvers.particle_coupling written out per neuron j (r atoms U_i(theta_j) of the low-rank coupling):

  explicit_k   dW_j (Philox4x32-10 normals, or read from an array: the noise callback),
               dx_j = sigma dW (+ 1/2 sum M (dW dW - delta dt), Milstein) + dt (f + (u + sqrt(n) (F_j + h)) e)
               with F_j = sum_i w_i U_i(theta_j) + w_shift (= psi(theta_j) . c_a), x_j += dx_j, and the
               moments of the exponential step s_i = sum_j U_i g'_j dx_{j,e} (and sum_j g'_j dx_{j,e});
  finish_k     x_{j,e} += dt sqrt(n) (sum_i w_i U_i + w_shift)  (the exponential correction, psi . dz_a),
               then g_j, g'_j and their moments sum_j U_i g_j, sum_j U_i U_i' g'_j, sum_j x_j
               (the coupling and the slope matrix of the next step, and the finiteness check).

Each chunk writes its sums into its own row of a partial array; the caller adds the rows in a fixed
order, so the result does not depend on the number of threads.  The Brownian increments of neuron j,
component k at step s of population p are the normal pair number (j q + k) // 2 of the counter-based
generator: Philox4x32-10 (Salmon et al., SC'11) with counter (pair, p, s mod 2^32, s div 2^32) and a
64-bit key from the run's seed; two 53-bit uniforms of its 128 output bits are mapped to normals by
the inverse normal CDF (Wichura's AS241, relative accuracy 1e-16).  The noise therefore depends on
(seed, step, population, neuron) only: not on the chunking, nor on the threads.

Expressions are the ones of the NumPy module (same SymPy outputs, same safe rewrites), printed for
scalars (math.*) after one common-subexpression elimination per kernel.  A model using a function
without a scalar counterpart here (log_ndtr, erfcx) gets NUMBA_SOURCE = None and NUMBA_UNSUPPORTED
(the reason); its particles run on the NumPy path.  Generated code never imports SymPy.
"""
from __future__ import annotations

import textwrap

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .printer import _normal_cdf_form, safe_form

#: Neurons per chunk (even: a Philox call gives the normals of two consecutive slots j q + k).
CHUNK = 4096

RUNTIME = '''
CHUNK = {chunk}

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S21 = np.uint64(21)
_S11 = np.uint64(11)
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


@numba.njit(cache=True)
def _ndtri(p):
    """Standard normal quantile, 0 < p < 1 (Wichura, AS241, PPND16)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r
                    + 6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r
                  + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
                + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q
        den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r
                    + 3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r
                  + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
                + 4.2313330701600911252e+1) * r + 1.0)
        return num / den
    r = p if q <= 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r = r - 1.6
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                    + 2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r
                  + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
                + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0)
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                    + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
                  + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
                + 2.05319162663775882187e+0) * r + 1.0)
    else:
        r = r - 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                    + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
                  + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r
                + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0)
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                    + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
                  + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
                + 5.99832206555887937690e-1) * r + 1.0)
    x = num / den
    return -x if q < 0.0 else x


@numba.njit(cache=True)
def _normal_pair(k0, k1, pop, step, pair):
    """The normals number 2 pair and 2 pair + 1 of (population pop, step) under the key (k0, k1)."""
    s = np.uint64(step)
    a, b, c, d = _philox(np.uint64(pair), np.uint64(pop), s & _MASK, s >> _S32, k0, k1)
    u0 = (float((a << _S21) | (b >> _S11)) + 0.5) * _TWO_M53
    u1 = (float((c << _S21) | (d >> _S11)) + 0.5) * _TWO_M53
    return _ndtri(u0), _ndtri(u1)


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
'''


class ScalarPrinter(PythonCodePrinter):
    """Scalar Python (math.*) for numba: the NumPy printer's special functions as the helpers above."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})

    def _print_ndtr(self, expr):
        return f"_ndtr({self._print(expr.args[0])})"

    def _print_expit(self, expr):
        return f"_expit({self._print(expr.args[0])})"

    def _print_logaddexp(self, expr):
        return f"_logaddexp({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_log_ndtr(self, expr):
        raise NotImplementedError("log_ndtr (log of the normal CDF) has no scalar helper in the compiled step")

    def _print_erfcx(self, expr):
        raise NotImplementedError("erfcx has no scalar helper in the compiled step")

    def _print_ComplexInfinity(self, expr):
        return "math.nan"

    def _print_NaN(self, expr):
        return "math.nan"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Integer(self, expr):
        return str(int(expr))


_PRINTER = ScalarPrinter()


def scalar_code(expr) -> str:
    """Scalar source of ``expr``; NotImplementedError naming what has no scalar counterpart."""
    text = _PRINTER.doprint(_normal_cdf_form(sp.sympify(expr)))
    if "# Not supported" in text or "Not supported in Python" in text:
        raise NotImplementedError(f"no scalar code for {expr}")
    return text


def _block(model, named):
    """CSE over the (name, expression) pairs: the assignment lines, and the names of the parameters
    the lines use."""
    exprs = [safe_form(sp.sympify(e), model.state) for _, e in named]
    subs, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), order="canonical")
    lines = [f"{sym} = {scalar_code(e)}" for sym, e in subs]
    for (name, _), red in zip(named, reduced):
        lines.append(f"{name} = {repr(float(red)) if red.is_number and red.is_real else scalar_code(red)}")
    used = set()
    for e in exprs:
        used |= {s.name for s in e.free_symbols}
    return lines, used


def _kernels(model, pd, pop, pos, params):
    """(explicit body, finish body, uses t in the inputs) of one population."""
    x = [s.name for s in model.state]
    m, e = len(x), model.input_component
    q = pd.diffusion.shape[1]
    # as solvers.particle_steps.static_inputs: u + sqrt(n) h is precomputed unless it depends on t
    dynamic_in = any(s.name == "t" for s in (sp.sympify(pop.input).free_symbols
                                              | sp.sympify(pop.drive).free_symbols))
    named = [(f"_f{i}", pd.ito_drift[i]) for i in range(m)]
    named += [(f"_s{i}_{k}", pd.diffusion[i, k]) for i in range(m) for k in range(q)]
    mil = []
    if pd.milstein is not None:
        for i in range(m):
            for j in range(q):
                for k in range(q):
                    v = sp.sympify(pd.milstein[i][j][k])
                    if v != 0:
                        mil.append((i, j, k))
                        named.append((f"_M{i}_{j}_{k}", v))
    if dynamic_in:
        named += [("_u", pop.input), ("_h", pop.drive)]
    lines_a, used_a = _block(model, named)
    lines_b, used_b = _block(model, [("_g", pd.gain), ("_gp", pd.gain_slope)])

    def unpack(used):
        return [f"{p} = _prm[{i}]" for i, p in enumerate(params) if p in used]

    def load_state():
        out = [f"{x[i]} = _x[{i}, _j]" for i in range(m)]
        out += [f"{p} = _pos{d}[_j]" for d, p in enumerate(pos)]
        return out

    # ---- explicit -----------------------------------------------------------------------
    noise = ["if _draw:"]
    for k in range(q):
        noise += [f"    _slot = _j * {q} + {k}" if q > 1 else "    _slot = _j",
                  "    if (_slot & 1) == 0:",
                  "        _z0, _z1 = _normal_pair(_k0, _k1, _pop, _step, _slot >> 1)",
                  f"    _dW{k} = (_z0 if (_slot & 1) == 0 else _z1) * _sdt"]
    noise += ["else:"] + [f"    _dW{k} = _dW[{k}, _j]" for k in range(q)]
    inc = []
    for i in range(m):
        inc.append(f"_d{i} = _s{i}_0 * _dW0")
        inc += [f"_d{i} += _s{i}_{k} * _dW{k}" for k in range(1, q)]
    if mil:
        inc.append("if _milstein:")
        for i, j, k in mil:
            inc += [f"    _p = _dW{j} * _dW{k}"] + (["    _p -= _dt"] if j == k else []) + \
                   [f"    _p *= _M{i}_{j}_{k}", "    _p *= 0.5", f"    _d{i} += _p"]
    inc += ["_F = 0.0", "for _i in range(_nr):", "    _F += _w[_i] * _U[_i, _j]", "_F += _wshift", "_F *= _sq"]
    inc += ["_F += _u", "_F += _sq * _h"] if dynamic_in else ["_F += _cin[_j * _cstride]"]
    inc += [f"_F += _f{e}", "_F *= _dt", f"_d{e} += _F"]
    inc += [f"_d{i} += _dt * _f{i}" for i in range(m) if i != e]
    inc += [f"_x[{i}, _j] = {x[i]} + _d{i}" for i in range(m)]
    inc += ["if _collect:", f"    _v = _d{e} * _GP[_j]", "    _acc[_nr] += _v",
            "    for _i in range(_nr):", "        _acc[_i] += _U[_i, _j] * _v"]
    inner_a = load_state() + noise + lines_a + inc
    body_a = unpack(used_a) + [
        "_n = _x.shape[1]", "_nr = _U.shape[0]", "_nch = (_n + CHUNK - 1) // CHUNK",
        "for _ch in prange(_nch):",
        "    _lo = _ch * CHUNK", "    _hi = min(_lo + CHUNK, _n)", "    _acc = np.zeros(_nr + 1)",
        "    _z0 = 0.0", "    _z1 = 0.0",
        "    for _j in range(_lo, _hi):"] + ["        " + ln for ln in inner_a] + [
        "    for _i in range(_nr + 1):", "        _part[_ch, _i] = _acc[_i]"]

    # ---- finish ---------------------------------------------------------------------------
    corr = ["if _correct:", "    _corr = 0.0", "    for _i in range(_nr):",
            "        _corr += _w[_i] * _U[_i, _j]", "    _corr += _wshift", f"    _x[{e}, _j] += _dts * _corr"]
    acc = ["if _store_g:", "    _G[_j] = _g", "_am[_nr] += _g", "for _i in range(_nr):",
           "    _am[_i] += _U[_i, _j] * _g",
           "if _slopes:", "    _GP[_j] = _gp", "    _as[0] += _gp", "    for _i in range(_nr):",
           "        _ui = _U[_i, _j] * _gp", "        _as[1 + _i] += _ui", "        for _i2 in range(_nr):",
           "            _as[1 + _nr + _i * _nr + _i2] += _ui * _U[_i2, _j]",
           "_xs += " + " + ".join(x)]
    inner_b = corr + load_state() + lines_b + acc
    body_b = unpack(used_b) + [
        "_n = _x.shape[1]", "_nr = _U.shape[0]", "_nch = (_n + CHUNK - 1) // CHUNK",
        "for _ch in prange(_nch):",
        "    _lo = _ch * CHUNK", "    _hi = min(_lo + CHUNK, _n)", "    _am = np.zeros(_nr + 1)",
        "    _as = np.zeros(1 + _nr + _nr * _nr)", "    _xs = 0.0",
        "    for _j in range(_lo, _hi):"] + ["        " + ln for ln in inner_b] + [
        "    for _i in range(_nr + 1):", "        _mpart[_ch, _i] = _am[_i]",
        "    for _i in range(1 + _nr + _nr * _nr):", "        _spart[_ch, _i] = _as[_i]",
        "    _xpart[_ch] = _xs"]
    return body_a, body_b, not dynamic_in


def numba_source(model, derivation) -> tuple[str | None, str]:
    """(source, reason): the numba module of the fused particle step, or (None, why it cannot be made)."""
    d = derivation
    if not d.kernels.separable:
        return None, ("the kernel is not separable: the FFT / dense coupling runs on the NumPy path "
                      "(the compiled step covers the low-rank coupling)")
    pos = [s.name for s in model.space.theta]
    params = [s.name for s in model.parameters]
    pos_args = "".join(f"_pos{i}, " for i in range(len(pos)))
    kernels, names, static = [], {}, {}
    try:
        for pop in model.populations:
            body_a, body_b, st = _kernels(model, d.populations[pop.name], pop, pos, params)
            static[pop.name] = st
            key = ("\n".join(body_a), "\n".join(body_b))
            if key not in kernels:
                kernels.append(key)
            k = kernels.index(key)
            names[pop.name] = (f"explicit_{k}", f"finish_{k}")
    except NotImplementedError as exc:
        return None, f"model {model.name!r}: {exc}"
    out = [f'"""Compiled particle step of model {model.name!r} (numba): generated by balkin, DO NOT EDIT.',
           "",
           "See derive/codegen_numba.py for the scheme; the NumPy functions of the enclosing module are the",
           'reference (solvers.particle_steps, solvers.particle_coupling)."""',
           "import math", "", "import numba", "import numpy as np", "from numba import prange", "",
           f"PARAMETERS = {tuple(params)!r}",
           f"KERNELS = {names!r}",
           f"STATIC_INPUT = {static!r}",
           f"INPUT_COMPONENT = {model.input_component!r}",
           textwrap.dedent(RUNTIME).replace("{chunk}", str(CHUNK)).rstrip("\n")]
    deco = '@numba.njit(parallel=True, cache=True, error_model="numpy")'
    for k, (a, b) in enumerate(kernels):
        out += ["", "", deco,
                f"def explicit_{k}(_x, {pos_args}_U, _w, _wshift, _cin, _cstride, t, _dt, _sdt, _sq, _dW, _draw,",
                "        _k0, _k1, _pop, _step, _GP, _collect, _milstein, _prm, _part):",
                '    """Explicit increment in place (x += dx) and the moments of U_i g\' dx_e per chunk."""',
                textwrap.indent(a, "    ")]
        out += ["", "", deco,
                f"def finish_{k}(_x, {pos_args}_U, _w, _wshift, _dts, _correct, t, _G, _store_g, _GP, _slopes,",
                "        _prm, _mpart, _spart, _xpart):",
                '    """Exponential correction, then gains, slopes and their moments per chunk."""',
                textwrap.indent(b, "    ")]
    return "\n".join(out) + "\n", ""
