"""Code generation: a Derivation -> one plain, vectorised NumPy module (generated/NAME.py).

Each generated function is printed from SymPy expressions after common-subexpression elimination.
All functions take the model parameters as keyword-only arguments whose defaults are the model's
values, so a caller can override any parameter.  Vector outputs are tuples (one array per
component), matrix outputs tuples of tuples; every array output is broadcast to the broadcast shape
of the array arguments.  The module header records the model's canonical hash, the hash of the
model's source file and the generator's version and hash; regeneration is byte-identical.
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import sympy as sp

from . import balance
from .derivation import Derivation, derive
from .dsl import t
from .hashing import GENERATOR_VERSION, file_hash, generator_hash, model_hash
from .printer import pycode, safe_form

GAUSS_HERMITE_NODES = 60

#: Printed calls whose results may underflow; a function using one runs under
#: numpy.errstate(under="ignore"): a value rounded to 0 (exp(-1000)) is exact, not an error.
UNDERFLOW_PRONE = ("numpy.exp(", "numpy.logaddexp(", "scipy.special.")


def _flatten(obj):
    if isinstance(obj, (list, tuple)):
        out = []
        for o in obj:
            out.extend(_flatten(o))
        return out
    return [obj]


def _rebuild(obj, it):
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(_rebuild(o, it) for o in obj)
        return f"({inner},)" if len(obj) == 1 else f"({inner})"
    return next(it)


def _nested(M):
    if isinstance(M, sp.MatrixBase):
        if M.shape[1] == 1:
            return tuple(M)
        return tuple(tuple(r) for r in M.tolist())
    return M


class ModuleWriter:
    """Accumulates generated functions for one model."""

    def __init__(self, model):
        self.model = model
        self.params = list(model.parameter_values.items())
        self.param_syms = {s.name: s for s in model.parameters}
        self.chunks: list[str] = []
        self.specs: list[tuple] = []   # (name, args, outputs, as_array): what each function computes
        self.uses_scipy = False
        self.gain_closed_form: dict = {}   # population -> field_gain_P is a closed form
        self.uses: dict = {}               # function name -> the arguments its outputs depend on

    def _signature(self, args):
        parts = list(args)
        if self.params:
            parts.append("*")
            parts.extend(f"{k}={v!r}" for k, v in self.params)
        one = ", ".join(parts)
        return one

    def function(self, name, args, outputs, doc, *, array_args=None, as_array=False):
        """Emit ``def name(args, *, params): return outputs``.

        outputs: an expression or nested tuples of expressions.  array_args: names of the arguments
        that may be arrays (outputs are broadcast against them); default all of ``args``.
        as_array: return numpy.array(outputs, dtype=float) (for parameter-only outputs).
        """
        array_args = list(args) if array_args is None else list(array_args)
        self.specs.append((name, list(args), outputs, as_array))
        flat = [sp.sympify(e) for e in _flatten(outputs)]
        used_names = {s.name for e in flat for s in e.free_symbols}
        self.uses[name] = tuple(a for a in args if a in used_names)
        safe = [safe_form(e, self.model.state) for e in flat]   # logaddexp, expit, log_ndtr
        subs, reduced = sp.cse(safe, symbols=sp.numbered_symbols("_c"), order="canonical")
        lines = []
        for sym, expr in subs:
            lines.append(f"{sym} = {self._code(expr, name)}")
        texts = []
        need_shape = False
        for orig, red in zip(flat, reduced):
            code = repr(float(red)) if red.is_number and red.is_real else self._code(red, name)
            used = {s.name for s in orig.free_symbols}
            if not as_array and array_args and not set(array_args) <= used:
                need_shape = True
                code = f"numpy.broadcast_to({code}, _shape)"
            texts.append(code)
        if need_shape:
            shapes = ", ".join(f"numpy.shape({a})" for a in array_args)
            lines.insert(0, f"_shape = numpy.broadcast_shapes({shapes})")
        result = _rebuild(outputs if isinstance(outputs, (list, tuple)) else outputs, iter(texts))
        if as_array:
            result = f"numpy.array({result}, dtype=float)"
        lines.append(f"return {result}")
        body = "\n".join(lines)
        if any(marker in body for marker in UNDERFLOW_PRONE):
            body = 'with numpy.errstate(under="ignore"):\n' + textwrap.indent(body, "    ")
        sig = self._signature(args)
        head = f"def {name}({sig}):"
        if len(head) > 100:
            head = "def " + name + "(\n" + textwrap.indent(",\n".join(sig.split(", ")), " " * 8) + "):"
        doc = textwrap.indent(f'"""{doc}"""', "    ")
        self.chunks.append(f"{head}\n{doc}\n{textwrap.indent(body, '    ')}\n")

    def _code(self, expr, fname):
        try:
            code = pycode(expr)
        except ValueError as exc:
            raise ValueError(f"model {self.model.name!r}, function {fname}: {exc}") from None
        if "scipy." in code:
            self.uses_scipy = True
        return code

    def raw(self, text):
        self.chunks.append(text.rstrip("\n") + "\n")


def _names(syms):
    return [s.name for s in syms]


def generate_source(model, model_path: str | Path | None = None, derivation: Derivation | None = None,
                    *, recorded_path: str | None = None) -> str:
    """The text of generated/NAME.py for ``model``.  ``model_path`` is the model file (its sha256
    is recorded); ``recorded_path`` the path written into the module (default: model_path as given)."""
    return _write(model, model_path, derivation, recorded_path)[0]


def function_specs(model, derivation: Derivation | None = None) -> list[tuple]:
    """What every generated function computes: (name, argument names, SymPy outputs (nested
    tuples), as_array).  Tests compare the generated code against these expressions."""
    return _write(model, None, derivation, None)[1].specs


def _write(model, model_path, derivation, recorded_path):
    d = derivation or derive(model)
    for pd in d.populations.values():
        if pd.stationary_skipped:   # one line on stderr (logging's last-resort handler), no traceback
            logging.getLogger("balkin").warning("balkin: model %r: %s; the generated module records "
                                                "it in STATIONARY_SKIPPED", model.name, pd.stationary_skipped)
    w = ModuleWriter(model)
    x = _names(model.state)
    pos = _names(model.space.theta)
    posphi = _names(model.space.phi)
    e = model.input_component
    names = model.names
    lam = sp.Symbol("lam", real=True)

    for pop in model.populations:
        pd = d.populations[pop.name]
        P = pop.name
        sargs = x + pos + ["t"]
        w.function(f"drift_{P}", sargs, _nested(pd.ito_drift),
                   f"Itô drift f_{P}(x, theta, t), one array per state component"
                   + (" (Stratonovich correction included)." if model.noise == "stratonovich" else "."))
        w.function(f"diffusion_{P}", sargs, tuple(tuple(r) for r in pd.diffusion.tolist()),
                   f"Diffusion sigma_{P}: m x q nested tuple, sigma[i][k] multiplies dW_k in component i.")
        if pd.milstein is not None:
            w.function(f"milstein_{P}", sargs, pd.milstein,
                       f"Milstein tensor M[i][j][k] = sum_l sigma_lj d_l sigma_ik of population {P}:\n"
                       "    x_i += f_i dt + sum_k sigma_ik dW_k + 1/2 sum_jk M[i][j][k] (dW_j dW_k - delta_jk dt).")
        w.function(f"fp_velocity_{P}", sargs, _nested(pd.fp_velocity.xreplace(
            {sp.Symbol(f"lambda_{P}", real=True): 0})),
            "Advection velocity of the Fokker–Planck flux without the multiplier:\n"
            "    V_i = f_i + u e_i - sum_j d_j (D_ij / 2);   J = (V + lambda e) p - (D/2) grad p.")
        w.function(f"fp_diffusion_{P}", sargs, tuple(tuple(r) for r in (pd.diffusion_tensor / 2).tolist()),
                   "Half the diffusion tensor, (1/2) sigma sigma^T, of the Fokker–Planck flux.")
        w.function(f"gain_{P}", sargs, pd.gain, f"Gain g_{P}: the activity of one neuron.")
        w.function(f"gain_slope_{P}", sargs, pd.gain_slope,
                   f"dg_{P}/d{x[e]}: its population mean is D_{P} in the multiplier equation.")
        w.function(f"gain_generator_{P}", sargs, pd.gain_generator,
                   f"L g_{P} = (f + u e) . grad g + 1/2 tr(sigma sigma^T Hess g).")
        w.function(f"input_{P}", pos + ["t"], pop.input, f"O(1) external input u_{P}(theta, t).")
        w.function(f"drive_{P}", pos + ["t"], pop.drive, f"O(sqrt n) external drive h_{P}(theta, t).")
        w.function(f"drive_rate_{P}", pos + ["t"], sp.diff(pop.drive, t), f"d h_{P} / dt.")
        st = pd.stationary
        if st is not None:
            w.function(f"potential_integrand_{P}", sargs, (st.integrand0, st.integrand1),
                       "Integrands of the stationary potential: (2 (f + u) / sigma^2, 2 / sigma^2).")
            w.function(f"log_sigma2_{P}", sargs, st.log_sigma2, "log sigma^2 (stationary density factor).")
            if st.closed_form:
                w.function(f"potential_{P}", sargs, (st.U0, st.U1),
                           "Closed-form potentials (U0, U1): U0 = int^x 2 (f + u)/sigma^2, U1 = int^x 2/sigma^2.")
                w.function(f"stationary_log_density_{P}", sargs + ["lam"],
                           st.U0 + lam * st.U1 - st.log_sigma2,
                           "Unnormalised log stationary density for fixed multiplier lam:\n"
                           "    log p = U0 + lam U1 - log sigma^2.", array_args=sargs + ["lam"])
        fs = pd.field
        if fs is not None:
            means = _names(fs.mean)
            covs = [fs.cov[i, j].name for i in range(model.m) for j in range(i, model.m)]
            w.function(f"field_A_{P}", pos + ["t"], tuple(tuple(r) for r in fs.A.tolist()),
                       "Drift matrix A of the linear drift f = A x + c.")
            w.function(f"field_c_{P}", pos + ["t"], _nested(fs.c), "Affine part c of f = A x + c.")
            w.function(f"field_noise_{P}", pos + ["t"], tuple(tuple(r) for r in fs.Q.tolist()),
                       "sigma sigma^T (additive noise).")
            w.function(f"field_mean_rhs_{P}", means + pos + ["t", "lam"],
                       _nested(fs.mean_rhs.xreplace({fs.lam: lam})),
                       "d_t m = A m + c + (u + lam) e.")
            w.function(f"field_cov_rhs_{P}", covs + pos + ["t"],
                       tuple(fs.cov_rhs[i, j] for i in range(model.m) for j in range(i, model.m)),
                       "d_t C = A C + C A^T + sigma sigma^T, upper triangle row by row.")
        comp = [i for i, s in enumerate(model.state) if pop.gain.has(s)]
        if len(comp) == 1:
            from .field import gaussian_expectation
            xm, xv = sp.Symbol("mean", real=True), sp.Symbol("var", real=True)
            G = gaussian_expectation(pop.gain, model.state[comp[0]], xm, xv)
            w.gain_closed_form[P] = G is not None
            if G is not None:
                w.function(f"field_gain_{P}", ["mean", "var"] + pos, G,
                           f"G_{P}(mean, var) = E[g(mean + sqrt(var) Z)], closed form "
                           f"(mean, var of component {x[comp[0]]}).")
            else:
                w.function(f"_gain_only_{P}", [x[comp[0]]] + pos, pop.gain,
                           "The gain as a function of its one state component.")
                w.uses[f"field_gain_{P}"] = ("mean", "var") + tuple(
                    q for q in pos if q in w.uses[f"_gain_only_{P}"])
                others = ", ".join(pos)
                w.raw(f"def field_gain_{P}(mean, var{', ' + others if others else ''}, **params):\n"
                      f'    """G_{P}(mean, var) = E[g(mean + sqrt(var) Z)] by Gauss–Hermite quadrature '
                      f'({GAUSS_HERMITE_NODES} nodes)."""\n'
                      f"    mean = numpy.asarray(mean, dtype=float)[..., None]\n"
                      f"    sd = numpy.sqrt(numpy.asarray(var, dtype=float))[..., None]\n"
                      f"    vals = _gain_only_{P}(mean + sd * _GH_NODES"
                      f"{''.join(', ' + q for q in pos)}, **params)\n"
                      f"    return numpy.sum(vals * _GH_WEIGHTS, axis=-1)\n")

    # kernels
    for a in names:
        for b in names:
            w.function(f"kernel_{a}_{b}", pos + posphi, model.kernel_of(a, b),
                       f"Connectivity kernel w_{a}{b}(theta, phi) (sign carries E or I).")
    ks = d.kernels
    if ks.separable:
        bal = d.balance
        w.function("psi", pos, tuple(ks.psi), "Range(W) basis atoms psi_k(theta).")
        w.function("chi", posphi, tuple(c for c in ks.chi), "Sending-side atoms chi_l(phi).")
        w.function("kernel_coefficients", [], tuple(tuple(tuple(tuple(ks.coefficients[(a, b)].tolist()[k])
                                                                   for k in range(len(ks.psi)))
                                                             for b in names) for a in names),
                   "C[a, b, k, l] with w_ab(theta, phi) = sum_kl C[a, b, k, l] psi_k(theta) chi_l(phi).",
                   as_array=True)
        w.function("constraint_matrix", [], tuple(tuple(r) for r in bal.B.tolist()),
                   "B[(a,k), (b,l)] = alpha_b C[a, b, k, l] (rows population-major over psi, columns over chi).",
                   as_array=True)
        w.function("gram", [], tuple(tuple(r) for r in bal.gram.tolist()),
                   "G[l, j] = <chi_l, psi_j> = integral chi_l psi_j dphi / |Omega|.", as_array=True)
        w.function("drive_coefficients", ["t"], tuple(tuple(bal.drive[a]) for a in names),
                   "h_a(theta, t) = sum_k H[a, k] psi_k(theta) (t a scalar).", as_array=True)
        w.function("drive_rate_coefficients", ["t"], tuple(tuple(sp.diff(c, t) for c in bal.drive[a])
                                                           for a in names),
                   "d/dt of drive_coefficients.", as_array=True)
        for a in names:
            w.function(f"drive_residual_{a}", pos + ["t"], bal.drive_residual[a],
                       f"Part of h_{a} outside span(psi): nonzero means h is outside Range(W).")
        Dn = [f"D_{a}" for a in names]
        w.function("fast_matrix", Dn, tuple(tuple(r) for r in bal.homogeneous_multiplier[1].tolist()),
                   "Matrix of q -> W(D q) on span{psi_k e_a} for spatially constant slopes D_a\n"
                   "    (rows and columns population-major over psi).", as_array=True)

    return _assemble(model, d, w, model_path, recorded_path), w


def _assemble(model, d, w, model_path, recorded_path):
    ks = d.kernels
    names = model.names
    src_hash = file_hash(model_path) if model_path is not None and Path(model_path).exists() else ""
    rel = recorded_path if recorded_path is not None else (
        Path(model_path).as_posix() if model_path is not None else "")
    pops = d.populations
    header = [
        f'"""Generated by balkin from {rel or "an in-memory model"}: model {model.name!r}.',
        "",
        "DO NOT EDIT. Regenerate with:  balkin generate " + (rel or f"models/{model.name}.py"),
        "",
        textwrap.indent(repr(model), ""),
        '"""',
        f"# balkin model hash (canonical form): {model_hash(model)}",
        f"# balkin model source hash (sha256): {src_hash}",
        f"# balkin generator version {GENERATOR_VERSION}, hash {generator_hash()}",
        "import numpy",
    ]
    if w.uses_scipy:
        header += ["", "",
                   "class _LazySpecial:",
                   '    """scipy.special, imported on first use so that importing this module stays fast."""',
                   "",
                   "    def __getattr__(self, name):",
                   "        import scipy.special",
                   "        return getattr(scipy.special, name)",
                   "",
                   "",
                   "class scipy:  # noqa: N801 - stands in for the scipy package in the code below",
                   "    special = _LazySpecial()",
                   ]
    consts = [
        "",
        f"MODEL_NAME = {model.name!r}",
        f"MODEL_PATH = {rel!r}",
        f"MODEL_HASH = {model_hash(model)!r}",
        f"MODEL_SOURCE_HASH = {src_hash!r}",
        f"GENERATOR_VERSION = {GENERATOR_VERSION!r}",
        f"GENERATOR_HASH = {generator_hash()!r}",
        f"SPACE = {model.space.kind!r}",
        f"POSITION = {tuple(s.name for s in model.space.theta)!r}",
        f"STATE = {tuple(s.name for s in model.state)!r}",
        f"INPUT_COMPONENT = {model.input_component!r}",
        f"NOISE = {model.noise!r}",
        f"NOISE_DIM = {dict((p.name, p.diffusion.shape[1]) for p in model.populations)!r}",
        f"POPULATIONS = {tuple(names)!r}",
        f"FRACTIONS = {tuple(float(p.fraction.subs(model.parameters)) for p in model.populations)!r}",
        f"INITIAL = {dict((p.name, p.initial) for p in model.populations)!r}",
        f"PARAMETERS = {model.parameter_values!r}",
        f"LINEAR_ADDITIVE = {dict((n, pd.linear_additive) for n, pd in pops.items())!r}",
        f"MILSTEIN = {dict((n, pd.milstein is not None) for n, pd in pops.items())!r}",
        f"STATIONARY_CLOSED_FORM = "
        f"{dict((n, bool(pd.stationary and pd.stationary.closed_form)) for n, pd in pops.items())!r}",
        f"DETERMINISTIC = {dict((n, pd.deterministic) for n, pd in pops.items())!r}",
        f"STATIONARY_SKIPPED = "
        f"{dict((n, pd.stationary_skipped) for n, pd in pops.items() if pd.stationary_skipped)!r}",
        f"FIELD_GAIN_CLOSED_FORM = "
        f"{dict((p.name, bool(w.gain_closed_form.get(p.name, False))) for p in model.populations)!r}",
        f"KERNEL_PAIRS = {tuple(sorted(model.kernel))!r}",
        f"KERNEL_SEPARABLE = {ks.separable!r}",
        f"PSI = {tuple(str(p) for p in ks.psi)!r}",
        f"CHI = {tuple(str(c) for c in ks.chi)!r}",
        f"MODES = {tuple(tuple(g) for g in (balance.modes(model, ks, d.balance.homogeneous_multiplier[1]) if ks.separable else []))!r}",
    ]
    consts.append("USES = {" + "".join(f"\n    {k!r}: {v!r}," for k, v in sorted(w.uses.items())
                                        if not k.startswith("_")) + "\n}")
    if any("_GH_NODES" in c for c in w.chunks):
        consts += ["",
                   f"_GH_NODES, _GH_WEIGHTS = numpy.polynomial.hermite_e.hermegauss({GAUSS_HERMITE_NODES})",
                   "_GH_WEIGHTS = _GH_WEIGHTS / numpy.sqrt(2 * numpy.pi)"]
    body = "\n\n".join(w.chunks)
    return "\n".join(header + consts) + "\n\n\n" + body + _numba_section(model, d)


def _numba_section(model, d) -> str:
    """The compiled particle step (derive.codegen_numba) as the string NUMBA_SOURCE (None, with the
    reason in NUMBA_UNSUPPORTED, where it cannot be made): compiled by solvers.particle_numba."""
    from .codegen_numba import numba_source
    src, why = numba_source(model, d)
    head = ["", "", "# ---- the compiled particle step (numba source, compiled and cached by solvers.particle_numba) ----",
            f"NUMBA_UNSUPPORTED = {why!r}"]
    if src is None:
        return "\n".join(head + ["NUMBA_SOURCE = None", ""])
    if "'''" in src or "\\" in src:
        raise AssertionError(f"model {model.name!r}: the numba source cannot be quoted as a raw string")
    return "\n".join(head + ["NUMBA_SOURCE = r'''" + src + "'''", ""])


def write_generated(model, model_path, out_dir) -> Path:
    """Write out_dir/NAME.py atomically (a temporary file in the same folder, renamed into place, so an
    existing module stays intact until the new one is complete); returns its path."""
    import os
    import tempfile
    text = generate_source(model, model_path)
    out = Path(out_dir) / f"{model.name}.py"
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def compile_module(model, model_path=None):
    """Generate and execute the module in memory (for tests); returns the module object."""
    import types
    src = generate_source(model, model_path)
    mod = types.ModuleType(f"generated_{model.name}")
    exec(compile(src, f"<generated {model.name}>", "exec"), mod.__dict__)
    mod.__source__ = src
    return mod

