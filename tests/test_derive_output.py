"""`balkin derive` output readable by a researcher (issue 10): Phi printed as Phi (not erf forms),
blocks identical across populations printed once ("[E, I] ..."), every symbol that appears defined
in a Symbols section, and `--latex` a complete, well-formed, deterministic LaTeX document (compiled
with pdflatex when it is on PATH)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from derive import Model, Phi as PhiCDF, Point, Population
from derive.derivation import derive
from derive.loader import load_model
from derive.render_common import Phi, atoms_of, blocks, entries, relabel, symbol_table, to_display
from derive.render_text import render
from derive.render_latex import PACKAGES, escape

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["ei_linear", "ei_multiplicative", "ring_ei", "ring_nonlinear", "ring_unstable"]
x, v = sp.symbols("x v", real=True)


def _zero_noise_model():
    h, J = sp.symbols("h J")
    xx = sp.Symbol("x")
    return Model(name="zn_det", state=[xx], space=Point(),
                 populations=[Population("E", drift=-xx, diffusion=1, gain=PhiCDF(xx), drive=h),
                              Population("I", drift=-xx, diffusion=0, gain=PhiCDF(xx), drive=0.6 * h)],
                 kernel={("E", "E"): J, ("E", "I"): -2 * J, ("I", "E"): J, ("I", "I"): -1.8 * J},
                 parameters={h: 0.1, J: 1.0})


def _two_component_model():
    xx, vv, h, J, s = sp.symbols("x v h J s")
    return Model(name="two_comp", state=[xx, vv], space=Point(),
                 populations=[Population("E", drift=[-xx + vv, -vv], diffusion=[0, s], gain=PhiCDF(2 * xx),
                                         drive=h),
                              Population("I", drift=[-xx + vv, -2 * vv], diffusion=[0, s],
                                         gain=PhiCDF(2 * xx), drive=h / 2)],
                 kernel={("E", "E"): J, ("E", "I"): -2 * J, ("I", "E"): J, ("I", "I"): -1.8 * J},
                 parameters={h: 0.1, J: 1.0, s: 1.0}, noise="stratonovich")


_CACHE = {}


def derivation(name):
    if name not in _CACHE:
        if name == "zn_det":
            model = _zero_noise_model()
        elif name == "two_comp":
            model = _two_component_model()
        else:
            model = load_model(ROOT / "models" / f"{name}.py")
        _CACHE[name] = derive(model)
    return _CACHE[name]


ALL = MODELS + ["zn_det", "two_comp"]


# ---- Phi ----------------------------------------------------------------------------------------------

def _as_erf(e):
    return e.replace(Phi, lambda y: (1 + sp.erf(y / sp.sqrt(2))) / 2)


@pytest.mark.parametrize("expr", [
    sp.erf(sp.sqrt(2) * x / 2) / 2 + sp.Rational(1, 2),
    sp.erfc(-x / sp.sqrt(2)) / 2,
    3 * sp.erf(x) + sp.Symbol("s") * sp.erf(2 * x) + 1,
    sp.exp(sp.erf(x / sp.sqrt(2 * (1 + x ** 2)))),
    sp.Matrix([sp.erf(x), x]),
])
def test_erf_is_displayed_through_phi_and_is_the_same_function(expr):
    shown = to_display(expr)
    pairs = zip(shown, expr) if isinstance(expr, sp.MatrixBase) else [(shown, expr)]
    for a, b in pairs:
        assert not a.has(sp.erf, sp.erfc) and (a.has(Phi) or not b.has(sp.erf, sp.erfc))
        assert sp.simplify(_as_erf(a) - b.rewrite(sp.erf)) == 0, (a, b)


def test_probit_gain_and_field_average_print_as_phi():
    assert to_display(sp.erf(sp.sqrt(2) * x / 2) / 2 + sp.Rational(1, 2)) == Phi(x)
    d = derivation("ring_ei")
    G = to_display(d.populations["E"].field.G)
    m, C = d.populations["E"].field.mean[0], d.populations["E"].field.cov[0, 0]
    assert G == Phi(m / sp.sqrt(C + 1))
    assert sp.sstr(G) == "Phi(m_x/sqrt(C_x_x + 1))"
    assert sp.pretty(Phi(x), use_unicode=True) == "Phi(x)"
    assert sp.latex(Phi(x)) == r"\Phi\left(x\right)"


@pytest.mark.parametrize("name", MODELS)
def test_text_and_latex_never_show_erf(name):
    d = derivation(name)
    text, tex = render(d), render(d, latex=True)
    body = text[:text.index("== Symbols ==")]
    assert "erf" not in body and "erf" not in tex[:tex.index(r"\section{Symbols}")]
    if "Phi" in repr(d.model.populations[0].gain) or d.model.populations[0].gain.has(sp.erf):
        assert "gain Phi(x)" in text.splitlines()[1]
        assert "[E, I] gain g:\nPhi(x)\n" in text
        assert r"\Phi\left(x\right)" in tex


# ---- merged blocks ------------------------------------------------------------------------------------

def test_identical_populations_print_once_with_their_names():
    text = render(derivation("ring_ei"))
    for title in ["Itô drift f", "diffusion sigma", "gain g", "mean equation, d_t mbar =",
                  "stationary log density (fixed lambda_a)", "neural field, d_t m ="]:
        assert f"[E, I] {title}" in text, title
        assert f"[E] {title}" not in text and f"[I] {title}" not in text
    assert "[λₐ + avg_f0_a(θ, t)]" in text          # the relabelled multiplier and drift average
    assert text.splitlines()[0].startswith("Model 'ring_ei': state ['x'], space Ring(theta, phi)")


def test_populations_that_differ_print_separately():
    text = render(derivation("zn_det"))
    assert "[E, I] Itô drift f:" in text
    assert "[E] diffusion sigma:" in text and "[I] diffusion sigma:" in text
    assert "[E, I] diffusion sigma" not in text
    assert "[E] stationary log density (fixed lambda_E):" in text
    skipped = [ln for ln in text.splitlines() if "skipped" in ln]
    assert len(skipped) == 1 and skipped[0].startswith(
        "[I] stationary density: skipped (population I is deterministic (diffusion = 0)")
    two = render(derivation("two_comp"))
    assert "[E] Itô drift f:" in two and "[I] Itô drift f:" in two and "[E, I] gain g:" in two


def test_relabel_touches_only_derived_population_symbols():
    lam, H = sp.Symbol("lambda_E", real=True), sp.Symbol("H_E")
    f = sp.Function("avg_f0_E", real=True)(sp.Symbol("t", real=True))
    e = relabel(lam + H + f, "E", "a")
    names = {s.name for s in e.free_symbols} | {g.func.__name__ for g in e.atoms(sp.Function)}
    assert {"lambda_a", "H_E", "avg_f0_a"} <= names and "lambda_E" not in names


def test_entries_keep_one_entry_per_population():
    es = entries(derivation("ring_ei"))
    assert [e.pop for e in es if e.slot == "drift"] == ["E", "I"]
    assert all(e.pop is None for e in es if e.slot == "model")


# ---- symbols ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_every_symbol_that_appears_is_defined(name):
    d = derivation(name)
    bl = blocks(entries(d), d.model.names)
    printed = [to_display(b.obj) for b in bl if b.obj is not None]
    merged = next((b.label for b in bl if len(b.pops) > 1), None)
    table = symbol_table(d, printed, merged)
    defined = set()
    for sd in table:
        assert "undocumented" not in sd.text, (sd.objs, sd.text)
        defined |= {o.name if isinstance(o, sp.Symbol) else o.func.__name__ for o in sd.objs}
    for obj in printed:
        syms, funcs, phi = atoms_of(obj)
        for a in syms:
            assert a.name in defined, a
        for f in funcs:
            assert f.func.__name__ in defined, f
        if phi:
            assert "Phi" in defined
    text = render(d)
    assert "== Symbols ==" in text and "undocumented" not in text
    if name == "ring_ei":
        sym = text[text.index("== Symbols =="):]
        for key in ["avg_f0_a(θ, t): population average", "Lg_E(φ, t), Lg_I(φ, t): population average",
                    "D_E(φ, t), D_I(φ, t): mean gain slope", "λₐ: multiplier", "yₓ: fluctuation",
                    "Phi(y): standard normal cumulative distribution function", "J_EE = 1",
                    "a: the population index"]:
            assert key in sym, key


# ---- LaTeX --------------------------------------------------------------------------------------------

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
          "pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda "
          "Xi Pi Sigma Upsilon Phi Psi Omega").split()
#: LaTeX kernel, article class, amsmath/amssymb macros the document may use.
STANDARD = set(_GREEK) | set((
    "documentclass usepackage begin end title author date maketitle section subsection item texttt text "
    "textbackslash textasciitilde textless textgreater allowdisplaybreaks setlength parindent textwidth "
    "oddsidemargin evensidemargin sloppy left right "
    "middle frac dfrac tfrac sqrt int iint oint sum prod lim limits operatorname mathrm mathbf mathit "
    "partial nabla cdot cdots times dots ldots vdots ddots quad qquad infty langle rangle bar hat tilde "
    "overline dot ddot log ln exp sin cos tan cot sec csc sinh cosh tanh arcsin arccos arctan max min sup "
    "inf to geq leq neq ne approx sim equiv pm mp vee wedge lfloor rfloor lceil rceil mid emph textit textbf "
    "boldsymbol det").split())
ENVIRONMENTS = {"document", "itemize", "description", "enumerate", "equation", "equation*", "align",
                "align*", "multline", "matrix", "pmatrix", "bmatrix", "cases", "split"}
MATH_ENVS = {"equation", "equation*", "align", "align*", "multline"}


def check_latex(doc: str):
    """Raise AssertionError if ``doc`` is not a well-formed standalone document."""
    assert doc.startswith("%") and r"\documentclass" in doc and doc.rstrip().endswith(r"\end{document}")
    assert doc.index(r"\begin{document}") > doc.index(r"\documentclass")
    for p in ("amsmath",):
        assert rf"\usepackage{{{p}}}" in doc
    # macros: standard, or defined in the preamble
    defined = set(re.findall(r"\\(?:newcommand|renewcommand|def)\*?\{?\\([A-Za-z]+)", doc))
    used = set(re.findall(r"\\(\\|[A-Za-z]+)", doc)) - {"\\"}      # "\\" (a new row) is no macro
    assert used <= STANDARD | defined, sorted(used - STANDARD - defined)
    assert set(PACKAGES) <= {"amsmath", "amssymb"}
    # one pass: braces, environments, \left/\right, math mode, text-mode specials
    depth, envs, lr, math = 0, [], [], None    # math: None, "$", or an environment name
    i, n = 0, len(doc)
    while i < n:
        c = doc[i]
        if c == "%" and (i == 0 or doc[i - 1] != "\\"):
            i = doc.find("\n", i)
            i = n if i < 0 else i + 1
            continue
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", doc[i:])
            name = m.group(1)
            if name in ("begin", "end"):
                em = re.match(r"\\(begin|end)\{([A-Za-z*]+)\}", doc[i:])
                assert em, doc[i:i + 40]
                env = em.group(2)
                assert env in ENVIRONMENTS, env
                if name == "begin":
                    envs.append(env)
                    if env in MATH_ENVS:
                        assert math is None, f"nested math at {i}"
                        math = env
                else:
                    assert envs and envs[-1] == env, f"\\end{{{env}}} closes {envs[-1:]} at {i}"
                    envs.pop()
                    if env in MATH_ENVS:
                        math = None
                i += len(em.group(0))
                continue
            if name == "left":
                lr.append(i)
            elif name == "right":
                assert lr, f"\\right without \\left at {i}"
                lr.pop()
            if name in ("(", "[", ")", "]"):
                raise AssertionError(f"use $...$ or an equation environment, not \\{name}, at {i}")
            i += len(m.group(0))
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            assert depth >= 0, f"unbalanced }} at {i}"
        elif c == "$":
            if math is None:
                math = "$"
            else:
                assert math == "$", f"$ inside {math} at {i}"
                assert not lr, f"\\left without \\right inside $...$ at {i}"
                math = None
        elif c in "_^" and math is None:
            raise AssertionError(f"unescaped {c} in text mode at {i}: {doc[max(0, i - 40):i + 20]!r}")
        elif c in "&#" and math is None and not envs[-1:] == ["align*"]:
            raise AssertionError(f"unescaped {c} in text mode at {i}")
        elif ord(c) > 127:
            raise AssertionError(f"non-ASCII character {c!r} at {i}")
        i += 1
    assert depth == 0, "unbalanced braces"
    assert not envs, f"unclosed environments {envs}"
    assert not lr, "\\left without \\right"
    assert math is None, "unclosed math"


@pytest.mark.parametrize("name", ALL)
def test_latex_document_is_well_formed(name):
    doc = render(derivation(name), latex=True)
    check_latex(doc)
    assert doc.count(r"\begin{equation}") + doc.count(r"\begin{multline}") == sum(1 for b in blocks(entries(derivation(name)),
                                                                   derivation(name).model.names)
                                                 if b.obj is not None)
    assert r"\section{Symbols}" in doc and r"\section{Equations}" in doc and r"\section{Model}" in doc
    assert render(derivation(name), latex=True) == doc


def test_the_checker_catches_mistakes():
    good = render(derivation("ei_linear"), latex=True)
    for bad in [good.replace(r"\end{description}", "", 1), good.replace("Kernels:", "Kernels_:"),
                good.replace(r"\maketitle", r"\maketitle\foo"), good.replace(r"\date{}", r"\date{"),
                good.replace(r"\right]", "]", 1)]:
        with pytest.raises(AssertionError):
            check_latex(bad)


def test_escape_text_mode():
    s = escape("lambda_E ^ {x} 50% & #1 ~ <a> \\ Itô Fokker–Planck Lévy")
    assert s == (r"lambda\_E \^{} \{x\} 50\% \& \#1 \textasciitilde{} \textless{}a\textgreater{} "
                 r"\textbackslash{} It\^{o} Fokker--Planck L\'{e}vy")


def test_latex_is_deterministic_across_processes(tmp_path):
    """Same document from a fresh interpreter with another hash seed, and from `balkin derive --latex --out`."""
    doc = render(derivation("ring_ei"), latex=True)
    env = dict(os.environ, PYTHONHASHSEED="12345")
    code = ("import sys; from derive.loader import load_model; from derive.derivation import derive; "
            "from derive.render_text import render; "
            "sys.stdout.write(render(derive(load_model('models/ring_ei.py')), latex=True))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == doc
    out = tmp_path / "ring_ei.tex"
    from balkin.cli import main
    assert main(["derive", str(ROOT / "models" / "ring_ei.py"), "--latex", "--out", str(out)]) == 0
    assert out.read_text() == doc


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not on PATH")
@pytest.mark.parametrize("name", ALL)
def test_latex_document_compiles(name, tmp_path):
    tex = tmp_path / f"{name}.tex"
    tex.write_text(render(derivation(name), latex=True))
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                        tex.name], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "Missing $ inserted" not in log
