"""The NumPy printer of generated code: SymPy expression -> vectorised NumPy source text."""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import SciPyPrinter


class BalkinPrinter(SciPyPrinter):
    """SciPy's printer with plain names for constants and binary numpy.maximum/minimum."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})

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
    try:
        text = _PRINTER.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        raise ValueError(f"cannot generate NumPy code for {expr}: {exc}") from None
    if "# Not supported" in text or "Not supported in Python" in text:
        raise ValueError(f"cannot generate NumPy code for {expr}: {text}")
    return text
