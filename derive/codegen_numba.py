"""Code generation of the compiled particle step: a Derivation -> the numba source of one fused step.

The source is stored in the generated module as the string NUMBA_SOURCE (a section of generated/NAME.py,
not a second file): importing the generated module stays free of numba (and fast), ``balkin generate``
and its --check and staleness machinery cover it unchanged, and the compiled cache is keyed by the hash
of exactly this text (solvers.particle_numba materialises it next to the generated module, in
__numba_cache__/NAME-<sha256[:16]>/, and lets numba cache the machine code there).

Per population the source holds two kernels, each one parallel pass (prange over fixed chunks of CHUNK
neurons) over the population's neurons, with the scheme of solvers.particle_steps and
solvers.particle_coupling written out per neuron j (the NR non-constant atoms U_i(theta_j) of the
low-rank coupling, unrolled into scalar accumulators):

  explicit_k   dW_j (Philox4x32-10 normals, or read from an array: the noise callback),
               dx_j = sigma dW (+ 1/2 sum M (dW dW - delta dt), Milstein) + dt (f + (u + sqrt(n) (F_j + h)) e)
               with F_j = sum_i w_i U_i(theta_j) + w_shift (= psi(theta_j) . c_a), x_j += dx_j, and the
               moments of the exponential step s_i = sum_j U_i g'_j dx_{j,e} (and sum_j g'_j dx_{j,e});
  finish_k     x_{j,e} += dt sqrt(n) (sum_i w_i U_i + w_shift)  (the exponential correction, psi . dz_a),
               then g_j, g'_j and their moments sum_j U_i g_j, sum_j U_i U_i' g'_j, sum_j x_j
               (the coupling and the slope matrix of the next step, and the finiteness check).

Each chunk writes its sums into its own row of a partial array; the caller adds the rows in a fixed
order, so the result does not depend on the number of threads.  The Brownian increments of neuron j,
component k at step s of population p are the normal number j q + k of a counter-based generator:
Philox4x32-10 (Salmon et al., SC'11) with counter (j q + k, p + 2^16 a, s mod 2^32, s div 2^32), a
the attempt, and a 64-bit key from the run's seed; its 128 output bits feed the ziggurat method
(Marsaglia & Tsang 2000, 256 layers, numpy's tables: 64 bits pick the layer and pass the rectangle
test 99.3 % of the time, the other 64 serve the wedge or tail test, a rejection takes the next
attempt's call).  The first calls of a block of BLOCK normals are made in one loop (independent
counters: it vectorises; one call alone is a chain of ten dependent rounds).  The noise depends on
(seed, step, population, neuron) only: not on the chunking, nor on the threads.

The generator, the normal numbers and the scalar special functions are not repeated in every
generated module: the source imports them from solvers/numba_runtime.py (RUNTIME_NAMES), and the
compiled-step cache is keyed by both texts (solvers.particle_numba).

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

#: The names of the run-time (solvers/numba_runtime.py: normal numbers, scalar special functions) that
#: the generated source imports: the kernels call some, tests and benchmarks reach the others through
#: the compiled-step module.
RUNTIME_NAMES = ("BLOCK", "CHUNK", "_FI", "_KI", "_WI", "_ZIG_R", "_ZIG_V", "_expit", "_logaddexp", "_ndtr",
                 "_normal", "_normal_from", "_philox", "_philox_block")


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


def _kernels(model, pd, pop, pos, params, nr):
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
        i0, slot = (f"(_j - _b0) * {q} + {k}", f"_j * {q} + {k}") if q > 1 else ("_j - _b0", "_j")
        noise += [f"    _i0 = {i0}",
                  f"    _dW{k} = _normal_from(_buf[0, _i0], _buf[1, _i0], _buf[2, _i0], _buf[3, _i0], _k0, _k1,",
                  f"                          _pop, _step, {slot}) * _sdt"]
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
    R = range(nr)
    inc += ["_F = 0.0"] + [f"_F += _w{i} * _U[{i}, _j]" for i in R] + ["_F += _wshift", "_F *= _sq"]
    inc += ["_F += _u", "_F += _sq * _h"] if dynamic_in else ["_F += _cin[_j * _cstride]"]
    inc += [f"_F += _f{e}", "_F *= _dt", f"_d{e} += _F"]
    inc += [f"_d{i} += _dt * _f{i}" for i in range(m) if i != e]
    inc += [f"_x[{i}, _j] = {x[i]} + _d{i}" for i in range(m)]
    inc += ["if _collect:", f"    _v = _d{e} * _GP[_j]", "    _av += _v"] + [f"    _a{i} += _U[{i}, _j] * _v" for i in R]
    inner_a = load_state() + noise + lines_a + inc
    body_a = unpack(used_a) + [
        "_n = _x.shape[1]", "_nch = (_n + CHUNK - 1) // CHUNK"] + [f"_w{i} = _w[{i}]" for i in R] + [
        "for _ch in prange(_nch):",
        "    _lo = _ch * CHUNK", "    _hi = min(_lo + CHUNK, _n)", "    _av = 0.0"] + [f"    _a{i} = 0.0" for i in R] + [
        f"    _buf = np.empty((4, BLOCK * {q}), np.uint64)",
        "    for _b0 in range(_lo, _hi, BLOCK):",
        "        _b1 = min(_b0 + BLOCK, _hi)",
        "        if _draw:",
        f"            _philox_block(_buf, _k0, _k1, _pop, _step, _b0 * {q}, (_b1 - _b0) * {q})",
        "        for _j in range(_b0, _b1):"] + ["            " + ln for ln in inner_a] + [
        f"    _part[_ch, {i}] = _a{i}" for i in R] + [f"    _part[_ch, {nr}] = _av"]

    # ---- finish ---------------------------------------------------------------------------
    corr = ["if _correct:", "    _corr = 0.0"] + [f"    _corr += _w{i} * _U[{i}, _j]" for i in R] + [
        "    _corr += _wshift", f"    _x[{e}, _j] += _dts * _corr"]
    pairs = [(i, i2) for i in R for i2 in R if i2 >= i]
    acc = ["if _store_g:", "    _G[_j] = _g", "_mg += _g"] + [f"_m{i} += _U[{i}, _j] * _g" for i in R]
    acc += ["if _slopes:", "    _GP[_j] = _gp", "    _sg += _gp"]
    for i in R:
        acc += [f"    _u{i} = _U[{i}, _j] * _gp", f"    _s{i} += _u{i}"]
    acc += [f"    _s{i}_{i2} += _u{i} * _U[{i2}, _j]" for i, i2 in pairs]
    acc += ["_xs += " + " + ".join(x)]
    zero = ["_mg", "_sg", "_xs"] + [f"_m{i}" for i in R] + [f"_s{i}" for i in R] + [f"_s{i}_{i2}" for i, i2 in pairs]
    inner_b = corr + load_state() + lines_b + acc
    body_b = unpack(used_b) + [
        "_n = _x.shape[1]", "_nch = (_n + CHUNK - 1) // CHUNK"] + [f"_w{i} = _w[{i}]" for i in R] + [
        "for _ch in prange(_nch):",
        "    _lo = _ch * CHUNK", "    _hi = min(_lo + CHUNK, _n)"] + [f"    {z} = 0.0" for z in zero] + [
        "    for _j in range(_lo, _hi):"] + ["        " + ln for ln in inner_b]
    body_b += [f"    _mpart[_ch, {i}] = _m{i}" for i in R] + [f"    _mpart[_ch, {nr}] = _mg", "    _spart[_ch, 0] = _sg"]
    body_b += [f"    _spart[_ch, {1 + i}] = _s{i}" for i in R]
    for i, i2 in pairs:
        body_b += [f"    _spart[_ch, {1 + nr + i * nr + i2}] = _s{i}_{i2}"]
        if i2 != i:
            body_b += [f"    _spart[_ch, {1 + nr + i2 * nr + i}] = _s{i}_{i2}"]
    body_b += ["    _xpart[_ch] = _xs"]
    return body_a, body_b, not dynamic_in


def atom_rows(model, ks) -> int:
    """NR: the number of distinct non-constant functions among psi_k(theta) and chi_l(theta) (chi with
    phi -> theta), the rows of solvers.coupling._Atoms.U at generic positions; at any positions the
    numerical atoms are at most as many (equal functions stay equal, constants stay constant), and the
    run pads U with zero rows up to NR."""
    sub = dict(zip(model.space.phi, model.space.theta))
    theta = set(model.space.theta)
    atoms = []
    for f in list(ks.psi) + [sp.sympify(c).xreplace(sub) for c in ks.chi]:
        f = sp.sympify(f)
        if f.free_symbols & theta and not any(sp.simplify(f - g) == 0 for g in atoms):
            atoms.append(f)
    return len(atoms)


def numba_source(model, derivation) -> tuple[str | None, str]:
    """(source, reason): the numba module of the fused particle step, or (None, why it cannot be made)."""
    d = derivation
    pos = [s.name for s in model.space.theta]
    params = [s.name for s in model.parameters]
    pos_args = "".join(f"_pos{i}, " for i in range(len(pos)))
    kernels, names, static = [], {}, {}
    # a kernel that is not separable runs with an FFT or dense coupling, whose field rides on one atom row
    # (solvers.particle_compiled.CompiledStep.field_explicit_pass)
    nr = atom_rows(model, d.kernels) if d.kernels.separable else 1
    try:
        for pop in model.populations:
            body_a, body_b, st = _kernels(model, d.populations[pop.name], pop, pos, params, nr)
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
           f"NR = {nr!r}",
           f"INPUT_COMPONENT = {model.input_component!r}",
           "",
           textwrap.fill(f"from solvers.numba_runtime import ({', '.join(RUNTIME_NAMES)})", 100,
                         subsequent_indent="    ", break_on_hyphens=False)]
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
