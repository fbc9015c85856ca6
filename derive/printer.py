"""The NumPy printer of generated code: SymPy expression -> vectorised NumPy source text."""
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


class BalkinPrinter(SciPyPrinter):
    """SciPy's printer with plain names for constants and binary numpy.maximum/minimum."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})

    def _print_ndtr(self, expr):
        return f"scipy.special.ndtr({self._print(expr.args[0])})"

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
