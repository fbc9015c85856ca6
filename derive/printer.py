"""The NumPy printer of generated code: SymPy expression -> vectorised NumPy source text.

Before common-subexpression elimination, ``safe_form`` rewrites the patterns that overflow or cancel
when printed literally (tested at |x| up to 1000 in tests/test_safe_printing.py):

    log(c z^m prod (a z + b)^k), z = exp(u)   -> log c + m u + sum k (log b + logaddexp(0, u + log(a/b)))
    z^j / prod (a z + b)^k                     -> products of expit(+-(u + log(a/b)))  (logistic, its slopes)
    log(a (1 +- erf(v)))                       -> log(2 a) + log_ndtr(+-sqrt(2) v)
    exp(-s^2/2) / ndtr(s)                      -> 2 / erfcx(-s/sqrt 2)   (Mills ratios; else with log_ndtr)
    Piecewise branch with exp of the state     -> the state clamped into the branch's bounds

with a, b, c positive; exp(u) with u depending on the state.  What cannot be matched is printed as is.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import SciPyPrinter


class ndtr(sp.Function):
    """The standard normal CDF as one special function (printed as scipy.special.ndtr): faster
    than (1 + erf(x/sqrt 2))/2 and accurate in the left tail, where that form cancels."""


def _normal_cdf_form(expr):
    """Rewrite every 1/2 + erf(u)/2 (within a sum) as ndtr(sqrt(2) u)."""
    def is_half_erf(term):
        c, rest = term.as_coeff_Mul()
        return c == sp.S.Half and isinstance(rest, sp.erf)

    def rewrite(e):
        if not isinstance(e, sp.Add):
            return e
        terms = list(e.args)
        if sp.S.Half not in terms:
            return e
        for t in terms:
            if is_half_erf(t):
                u = t.as_coeff_Mul()[1].args[0]
                rest = [a for a in terms if a is not t]
                rest.remove(sp.S.Half)
                return sp.Add(ndtr(sp.sqrt(2) * u), *rest)
        return e
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


class expit(sp.Function):
    """The logistic function 1/(1 + exp(-u)) (printed as scipy.special.expit: no overflow)."""


class log_ndtr(sp.Function):
    """log Phi(u) (printed as scipy.special.log_ndtr: finite far in the left tail)."""


class erfcx(sp.Function):
    """The scaled complementary error function exp(u^2) erfc(u) (printed as scipy.special.erfcx)."""


class logaddexp(sp.Function):
    """log(exp(a) + exp(b)) (printed as numpy.logaddexp: logaddexp(0, u) is the softplus)."""


_Z = sp.Symbol("_z", positive=True)   # stands for exp(u); user symbols never start with '_'


def safe_form(expr, state):
    """``expr`` with the overflow-prone patterns of the module docstring rewritten into logaddexp,
    expit and log_ndtr (mathematically equal; exp(u) counts only where u depends on ``state``)."""
    return _SafeRewriter(set(state)).walk(_normal_cdf_form(sp.sympify(expr)))


class _SafeRewriter:
    def __init__(self, state):
        self.state = state

    def walk(self, e):
        if e.is_Atom or not e.args:
            return e
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        if isinstance(e, sp.log):
            r = self._log(e.args[0])
            if r is not None:
                return r
        if isinstance(e, (sp.Mul, sp.Pow)):
            r = self._ratio(e)
            if r is not None:
                return r
        if isinstance(e, sp.Add):
            # terms rational in the same exp(u) are put over one denominator first, so that
            # z/(1+z) - z^2/(1+z)^2 becomes expit(u) expit(-u), not expit(u) - expit(u)^2 (cancels)
            ex = [a for a in e.args if self._exp_rational(a)]
            r = self._rational(sp.Add(*ex)) if len(ex) > 1 else None
            if r is not None:
                return r + sp.Add(*[self.walk(a) for a in e.args if a not in ex])
        args = [self.walk(a) for a in e.args]
        return e.func(*args) if args != list(e.args) else e

    def _piecewise(self, e):
        """numpy.select evaluates every branch everywhere: in a branch holding exp of the state,
        clamp each state symbol s into the bounds its branch's conditions put on it (s < a,
        s >= b, and the negations of the earlier conditions): equal where the branch is selected,
        and no overflow where it is not (Piecewise((exp(x), x < 0), (1 + x, True)) at x = 1000)."""
        pairs, earlier = [], []
        for expr, cond in e.args:
            if self._state_exps(expr):
                conds = [cond] + [sp.Not(c) for c in earlier]
                expr = expr.xreplace(self._clamps(conds))
            pairs.append((self.walk(expr), cond))
            earlier.append(cond)
        return sp.Piecewise(*pairs, evaluate=False)

    def _clamps(self, conds):
        lo, hi = {}, {}
        for c in conds:
            if isinstance(c, sp.Not) and isinstance(c.args[0], sp.core.relational.Relational):
                c = c.args[0].negated
            for r in (c.args if isinstance(c, sp.And) else (c,)):
                if not isinstance(r, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan,
                                      sp.GreaterThan)):
                    continue
                a, b, upper = r.lhs, r.rhs, isinstance(r, (sp.StrictLessThan, sp.LessThan))
                if b in self.state and not a.free_symbols & self.state:
                    a, b, upper = b, a, not upper
                if a in self.state and not b.free_symbols & self.state:
                    (hi if upper else lo).setdefault(a, []).append(b)
        out = {}
        for s in set(lo) | set(hi):
            v = s
            if s in lo:
                v = sp.Max(v, *lo[s])
            if s in hi:
                v = sp.Min(v, *hi[s])
            out[s] = v
        return out

    # -- exp(u) as the variable z of a rational function ------------------------------------
    def _state_exps(self, expr):
        return [a for a in expr.atoms(sp.exp) if a.args[0].free_symbols & self.state]

    def _exp_rational(self, expr):
        """expr holds state-dependent exps, none of them inside another function (log(1 + e^x)
        is not a rational function of e^x)."""
        return bool(self._state_exps(expr)) and not any(
            not isinstance(g, sp.exp) and self._state_exps(g) for g in expr.atoms(sp.Function))

    def _base(self, expr):
        """(u, {exp atom: integer k}) with every state-dependent exp atom = exp(u)^k, or None."""
        atoms = sorted(self._state_exps(expr), key=sp.default_sort_key)
        if not atoms or any(a.args[0].has(sp.exp) for a in atoms):
            return None
        a0 = atoms[0].args[0]
        ratios = [sp.cancel(a.args[0] / a0) for a in atoms]
        if not all(r.is_Rational for r in ratios):
            return None
        lcm = sp.ilcm(*[r.q for r in ratios]) if len(ratios) > 1 else ratios[0].q
        return a0 / lcm, {a: int(r * lcm) for a, r in zip(atoms, ratios)}

    def _in_z(self, expr):
        """(u, numerator poly, denominator poly) of expr as a rational function of z = exp(u)."""
        base = self._base(expr)
        if base is None:
            return None
        u, ks = base
        ez = expr.xreplace({a: _Z ** k for a, k in ks.items()})
        if not ez.is_rational_function(_Z):
            return None
        num, den = sp.fraction(sp.cancel(sp.together(ez)))    # coefficients may hold the state
        try:
            return u, sp.Poly(num, _Z), sp.Poly(den, _Z)
        except sp.PolynomialError:
            return None

    @staticmethod
    def _positive_factors(poly):
        """(c, m, [(a, b, k)]) with poly = c z^m prod (a z + b)^k, a, b > 0; None otherwise."""
        try:
            c, facs = sp.factor_list(poly)
        except (sp.PolynomialError, NotImplementedError):
            return None
        c, m, lin = sp.sympify(c), 0, []
        for f, k in facs:
            if f.degree() == 0:
                c *= f.as_expr() ** k
            elif f.degree() == 1:
                a, b = f.all_coeffs()
                if b == 0:
                    c, m = c * a ** k, m + k
                elif a.is_positive and b.is_positive:
                    lin.append((a, b, k))
                else:
                    return None
            else:
                return None
        return c, m, lin

    def _log(self, A):
        r = self._log_ndtr(A)
        if r is not None:
            return r
        got = self._in_z(A)
        if got is None:
            return None
        u, num, den = got
        fn, fd = self._positive_factors(num), self._positive_factors(den)
        if fn is None or fd is None or not (fn[2] or fd[2]):
            return None
        (cn, mn, ln), (cd, md, ld) = fn, fd
        if not (cn / cd).is_positive:
            return None
        u = self.walk(u)
        out = sp.log(cn / cd) + (mn - md) * u
        for sign, lins in ((1, ln), (-1, ld)):
            for a, b, k in lins:
                out += sign * k * (sp.log(b) + logaddexp(0, u + sp.log(a / b)))
        return out

    def _log_ndtr(self, A):
        """log(c ndtr(s)) or log(a + b erf(v)) with a = +-b > 0."""
        c, rest = A.as_independent(*self.state, as_Add=False)
        if isinstance(rest, ndtr) and c.is_positive:
            return sp.log(c) + log_ndtr(self.walk(rest.args[0]))
        terms = sp.Add.make_args(sp.expand(A))
        if len(terms) != 2:
            return None
        const = [q for q in terms if not q.free_symbols & self.state]
        var = [q for q in terms if q.free_symbols & self.state]
        if len(const) != 1 or len(var) != 1:
            return None
        b, e = var[0].as_independent(*self.state, as_Add=False)
        a = const[0]
        if not isinstance(e, sp.erf) or not a.is_positive:
            return None
        v = self.walk(e.args[0])
        if sp.simplify(a - b) == 0:
            return sp.log(2 * a) + log_ndtr(sp.sqrt(2) * v)
        if sp.simplify(a + b) == 0:
            return sp.log(2 * a) + log_ndtr(-sp.sqrt(2) * v)
        return None

    def _ratio(self, T):
        factors = sp.Mul.make_args(T)
        mills = self._mills(factors)
        if mills is not None:
            return mills
        ex = [f for f in factors if self._exp_rational(f)]
        r = self._rational(sp.Mul(*ex)) if ex else None
        if r is None:
            return None
        return sp.Mul(*[self.walk(f) for f in factors if f not in ex]) * r

    def _rational(self, Q):
        """Q = N(z) / (c z^m prod (a z + b)^k), z = exp(u), a, b > 0, as a sum over the monomials
        z^j of N of products of expit(+-(u + log(a/b))) (and exp(p u) for what is left, which
        grows genuinely); None when Q has no such denominator."""
        got = self._in_z(Q)
        if got is None or got[2].degree() == 0:
            return None
        u, num, den = got
        fd = self._positive_factors(den)
        if fd is None or not fd[2]:
            return None
        cd, md, lins = fd
        u = self.walk(u)
        total = sp.Integer(0)
        for (j,), cj in num.terms():
            p = j - md
            term = self.walk(cj) / cd
            for a, b, k in lins:
                w = u + sp.log(a / b)
                s = min(p, k) if p > 0 else 0
                p -= s
                term *= b ** -k * (b / a) ** s * expit(w) ** s * expit(-w) ** (k - s)
            total += term * sp.exp(p * u) if p else term
        return total

    def _mills(self, factors):
        """exp(w) / ndtr(s)^k: with ndtr(s) = erfcx(-s/sqrt 2) exp(-s^2/2) / 2 this is
        2^k exp(w + k s^2/2) / erfcx(-s/sqrt 2)^k, exact in both tails when w + k s^2/2 is free
        of the state (phi/Phi); otherwise exp(w - k log_ndtr(s)), finite in the left tail."""
        exps = [f for f in factors if isinstance(f, sp.exp) and f.args[0].free_symbols & self.state]
        cdf = [f for f in factors if isinstance(f, sp.Pow) and isinstance(f.base, ndtr)
               and f.exp.is_negative and f.exp.is_integer]
        if not exps or len(cdf) != 1:
            return None
        rest = [self.walk(f) for f in factors if f not in exps and f not in cdf]
        w = sum(self.walk(f.args[0]) for f in exps)
        k, s = -cdf[0].exp, self.walk(cdf[0].base.args[0])
        r = sp.expand(w + k * s ** 2 / 2)
        if not r.free_symbols & self.state:
            return sp.Mul(*rest) * 2 ** k * sp.exp(r) / erfcx(-s / sp.sqrt(2)) ** k
        return sp.Mul(*rest) * sp.exp(w - k * log_ndtr(s))


class BalkinPrinter(SciPyPrinter):
    """SciPy's printer with plain names for constants and binary numpy.maximum/minimum."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})

    def _print_ndtr(self, expr):
        return f"scipy.special.ndtr({self._print(expr.args[0])})"

    def _print_log_ndtr(self, expr):
        return f"scipy.special.log_ndtr({self._print(expr.args[0])})"

    def _print_erfcx(self, expr):
        return f"scipy.special.erfcx({self._print(expr.args[0])})"

    def _print_expit(self, expr):
        return f"scipy.special.expit({self._print(expr.args[0])})"

    def _print_logaddexp(self, expr):
        return f"numpy.logaddexp({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_ComplexInfinity(self, expr):
        return "numpy.nan"   # 1/0 (e.g. 1/sigma^2 where sigma vanishes): undefined there

    def _print_NaN(self, expr):
        return "numpy.nan"

    def _print_Pi(self, expr):
        return "numpy.pi"

    def _print_Exp1(self, expr):
        return "numpy.e"

    def _print_Max(self, expr):
        args = [self._print(a) for a in sorted(expr.args, key=sp.default_sort_key)]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.maximum({out}, {a})"
        return out

    def _print_Min(self, expr):
        args = [self._print(a) for a in sorted(expr.args, key=sp.default_sort_key)]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.minimum({out}, {a})"
        return out

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Integer(self, expr):
        return str(int(expr))


_PRINTER = BalkinPrinter()


def pycode(expr) -> str:
    """NumPy source for ``expr``; raises ValueError naming the expression if a function has no
    NumPy/SciPy counterpart."""
    from sympy.printing.codeprinter import PrintMethodNotImplementedError
    expr = _normal_cdf_form(sp.sympify(expr))
    try:
        text = _PRINTER.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        raise ValueError(f"cannot generate NumPy code for {expr}: {exc}") from None
    if "# Not supported" in text or "Not supported in Python" in text:
        raise ValueError(f"cannot generate NumPy code for {expr}: {text}")
    return text
