"""The LaTeX rendering of `balkin derive --latex`: one complete, deterministic document (article
class, amsmath and amssymb only) with the model, every derived equation in an ``equation``
environment (blocks identical across populations printed once, headed "[E, I]"), and a Symbols
section defining every symbol that appears.  `balkin derive MODEL --latex --out F` writes it to a file."""
from __future__ import annotations

import re
import unicodedata

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from .render_common import NOTATION, POP, Phi, blocks, entries, symbol_table, to_display

#: Packages the document loads (the test checks that every macro is standard LaTeX or from these).
PACKAGES = ("amsmath", "amssymb")


class _Printer(LatexPrinter):
    """SymPy's LaTeX printer with readable names for balkin's derived functions:
    gbar_E -> \\bar{g}_{E}, avg_f0_E -> \\langle f_{0} \\rangle_{E}, Lg_E -> \\langle L g \\rangle_{E}."""

    def _print_Function(self, expr, exp=None):
        if isinstance(expr, AppliedUndef):
            name = expr.func.__name__
            base = None
            if m := re.match(r"^gbar_([A-Za-z0-9]+)$", name):
                base = rf"\bar{{g}}_{{{m.group(1)}}}"
            elif m := re.match(r"^avg_f(\d+)_([A-Za-z0-9]+)$", name):
                base = rf"\langle f_{{{m.group(1)}}} \rangle_{{{m.group(2)}}}"
            elif m := re.match(r"^Lg_([A-Za-z0-9]+)$", name):
                base = rf"\langle L g \rangle_{{{m.group(1)}}}"
            elif m := re.match(r"^D_([A-Za-z0-9]+)$", name):
                base = rf"D_{{{m.group(1)}}}"
            if base is not None:
                args = ", ".join(self._print(a) for a in expr.args)
                s = rf"{base}\left({args}\right)"
                return s if exp is None else rf"\left({s}\right)^{{{exp}}}"
        return super()._print_Function(expr, exp)


def latex(obj) -> str:
    return _Printer().doprint(obj)


_UNICODE = {
    "ô": r"\^{o}", "é": r"\'{e}", "è": r"\`{e}", "ü": r"\"{u}", "–": "--", "—": "---", "’": "'",
    "×": r"$\times$", "·": r"$\cdot$", "λ": r"$\lambda$", "σ": r"$\sigma$", "θ": r"$\theta$",
    "φ": r"$\phi$", "ψ": r"$\psi$", "χ": r"$\chi$", "Λ": r"$\Lambda$", "α": r"$\alpha$", "Ω": r"$\Omega$",
    "π": r"$\pi$", "Σ": r"$\Sigma$", "∫": r"$\int$", "√": r"$\sqrt{}$", "∇": r"$\nabla$", "½": r"$\frac12$",
    "ᵀ": r"$^T$", "⟨": r"$\langle$", "⟩": r"$\rangle$", "²": r"$^2$", "∞": r"$\infty$", "∂": r"$\partial$",
    "−": "-", "§": "section ", "≥": r"$\geq$", "≤": r"$\leq$", "≠": r"$\neq$",
}
_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}", "&": r"\&",
            "%": r"\%", "$": r"\$", "#": r"\#", "~": r"\textasciitilde{}", "<": r"\textless{}",
            ">": r"\textgreater{}"}


def escape(text: str) -> str:
    """Plain text -> LaTeX text mode (specials escaped, known non-ASCII characters as macros)."""
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch if ch.isprintable() else " ")
        else:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(escape(base) if base else "?")
    return "".join(out)


def _title(b) -> tuple[str, str | None]:
    """(LaTeX title in text mode, left-hand side in math or None) of a block."""
    t = b.template
    lab = b.label or ""
    x = None
    if b.obj is None:
        return escape(b.title), None
    table = {
        "Itô drift f": (r"It\^{o} drift", "f ="),
        "diffusion sigma": ("diffusion", r"\sigma ="),
        "Fokker–Planck flux, (1/2) D = (1/2) sigma sigma^T": (
            "Fokker--Planck flux: diffusion", r"\frac{1}{2} D = \frac{1}{2} \sigma \sigma^{T} ="),
        "Fokker–Planck equation, d_t p =": ("Fokker--Planck equation", r"\partial_t p ="),
        "gain g": ("gain", "g ="),
        "generator on the gain L g": ("generator on the gain", "L g ="),
        "Milstein tensor L^j sigma_ik [i][j][k]": (
            r"Milstein tensor, indices $[i][j][k]$", r"L^{j} \sigma_{ik} ="),
        "mean equation, d_t mbar =": ("mean equation", r"\partial_t \bar{m} ="),
        "fluctuation drift": ("fluctuation drift",
                              r"f(\bar{m} + y) - \langle f \rangle ="),
        "neural field, d_t m =": ("neural field: mean", r"\partial_t m ="),
        "neural field, d_t C =": ("neural field: covariance", r"\partial_t C ="),
        "G(m, C) = E g": ("neural field: average activity", r"G(m, C) = E\, g ="),
    }
    if t in table:
        return table[t]
    if t.startswith("Fokker–Planck flux J = V p"):
        return (rf"Fokker--Planck flux $J = V p - \frac{{1}}{{2}} D \nabla p$: velocity (with "
                rf"$u + \lambda_{{{lab}}}$)", "V =")
    if t.startswith("gain slope"):
        return "gain slope", rf"\frac{{\partial g}}{{\partial {t.split('/d')[-1]}}} ="
    if t.startswith("stationary log density"):
        return rf"stationary log density (fixed $\lambda_{{{lab}}}$, up to a constant)", r"\log p ="
    if t.startswith("stationary potential integrand"):
        return (rf"stationary potential integrand (no closed form: quadrature)",
                rf"\frac{{2 (f + u + \lambda_{{{lab}}})}}{{\sigma^2}} =")
    if m := re.match(r"^kernel w\[(\w+),(\w+)\] separated, rank (\d+)$", t):
        return (f"kernel $w_{{{m.group(1)}{m.group(2)}}}$ separated, rank {m.group(3)}",
                rf"w_{{{m.group(1)}{m.group(2)}}}(\theta, \phi) =")
    if t.startswith("Range(W) basis"):
        return r"basis $\psi(\theta)$ of $\mathrm{Range}(W)$", r"\psi ="
    if t.startswith("constraint matrix B"):
        return (r"constraint matrix $B[(a,k),(b,l)] = \alpha_b C_{ab}[k,l]$", "B =")
    if t.startswith("fast matrix W D, mode"):
        return escape(t.replace("W D", "").replace("  ", " ")).replace("fast matrix", r"fast matrix $W D$"), x
    return escape(b.title), x


#: A LaTeX equation longer than this (characters of source) with a sum on its left is broken after
#: each term (multline) instead of running off the page.
LONG = 240


def _equation(obj, lhs) -> list[str]:
    """The lines of one numbered equation environment for ``obj`` (``lhs`` a left-hand side); a
    long sum (or an equation with a long sum on the left) is broken between its terms (multline)."""
    body = latex(obj)
    if isinstance(obj, sp.Equality) and isinstance(obj.lhs, sp.Add):
        total, tail = obj.lhs, f" = {latex(obj.rhs)}"
    elif isinstance(obj, sp.Add):
        total, tail = obj, ""
    else:
        total = None
    if total is None or len(body) <= LONG:
        return [r"\begin{equation}", (f"{lhs} {body}" if lhs else body), r"\end{equation}"]
    p = _Printer()
    rows, row = [], (f"{lhs} " if lhs else "")
    for i, term in enumerate(p._as_ordered_terms(total)):
        if term.could_extract_minus_sign():
            piece = f"- {p.doprint(-term)}"
        else:
            piece = f"{'+ ' if i else ''}{p.doprint(term)}"
        if row.strip() and len(row) + len(piece) > LONG // 2:
            rows.append(row.rstrip())
            row = ""
        row += piece + " "
    rows.append(row.rstrip() + tail)
    return [r"\begin{multline}", " \\\\\n".join(rows), r"\end{multline}"]


def _model_section(model) -> list[str]:
    L = [r"\section{Model}", "",
         f"Model {escape(model.name)}: state "
         f"${', '.join(latex(s) for s in model.state)}$, space {escape(repr(model.space))}, "
         f"{escape(model.noise)} noise, synaptic input into ${latex(model.state[model.input_component])}$.",
         "", r"\begin{description}"]
    for p in model.populations:
        L.append(rf"\item[{{population ${p.name}$:}}] fraction ${latex(to_display(p.fraction))}$, "
                 rf"drift ${latex(to_display(p.drift).T)}$, diffusion ${latex(to_display(p.diffusion))}$, "
                 rf"gain ${latex(to_display(p.gain))}$, drive ${latex(to_display(p.drive))}$, "
                 rf"input ${latex(to_display(p.input))}$")
    L += [r"\end{description}", "", "Kernels:", r"\begin{align*}"]
    rows = []
    for a in model.names:
        for b in model.names:
            w = model.kernel.get((a, b))
            lhs = rf"w_{{{a}{b}}}(\theta, \phi)" if model.space.theta else rf"w_{{{a}{b}}}"
            rows.append(rf"{lhs} &= {latex(to_display(w))}" if w is not None
                        else rf"{lhs} &= 0 \quad \text{{(missing pair: zero coupling)}}")
    L.append(" \\\\\n".join(rows))
    L += [r"\end{align*}", ""]
    if model.parameters:
        L.append("Parameters (default values): " + ", ".join(
            f"${latex(k)} = {v:g}$" for k, v in sorted(model.parameters.items(), key=lambda kv: kv[0].name))
            + ".")
        L.append("")
    return L


def render_latex(d) -> str:
    """The complete LaTeX document of a derivation (deterministic: no date, no paths)."""
    model = d.model
    bl = blocks(entries(d), model.names)
    merged = next((b.label for b in bl if len(b.pops) > 1), None)
    L = [f"% balkin derive --latex: model {model.name} (generated; deterministic)",
         r"\documentclass[10pt]{article}"]
    L += [rf"\usepackage{{{p}}}" for p in PACKAGES]
    L += [r"\allowdisplaybreaks", r"\setlength{\parindent}{0pt}", r"\setlength{\textwidth}{16cm}",
          r"\setlength{\oddsidemargin}{0cm}", r"\setlength{\evensidemargin}{0cm}", r"\sloppy",
          rf"\title{{Derived equations of the model {escape(model.name)}}}",
          r"\author{balkin}", r"\date{}", "", r"\begin{document}", r"\maketitle", ""]
    L += _model_section(model)
    L += [r"\section{Equations}", ""]
    if merged:
        L += [f"A block headed [{', '.join(model.names)}] holds for each of those populations, with "
              f"${merged}$ its label.", ""]
    printed = []
    for b in bl:
        obj = to_display(b.obj)
        title, lhs = _title(b)
        L.append(rf"\subsection*{{{escape(b.header)}{title}}}")
        if obj is not None:
            printed.append(obj)
            L += _equation(obj, lhs)
        L.append("")
    L += [r"\section{Symbols}", "", r"\begin{description}"]
    for sd in symbol_table(d, printed, merged):
        names = ", ".join(latex(o) for o in sd.objs)
        if names:
            L.append(rf"\item[{{${names}$:}}] {sd.latex}")
        else:
            L.append(rf"\item {sd.latex}")
    L += [r"\end{description}", "", r"\subsection*{Notation of the titles}", "", r"\begin{description}"]
    for _, tex_name, _, tex in NOTATION:
        L.append(rf"\item[{{${tex_name}$:}}] {tex}")
    L += [r"\end{description}", "", r"\end{document}"]
    return "\n".join(L) + "\n"


__all__ = ["render_latex", "escape", "latex", "Phi", "POP"]
