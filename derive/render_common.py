"""What `balkin derive` prints, independent of the output format (text or LaTeX).

* ``Phi``: the standard normal CDF as a named function for display; ``to_display`` rewrites every
  erf/erfc of a derived expression into it (erf(z) = 2 Phi(sqrt(2) z) - 1), so the gain
  erf(x/sqrt 2)/2 + 1/2 prints as Phi(x).  Display only: code generation never sees it.
* ``entries`` / ``blocks``: the equations of a derivation in reading order; per-population equations that coincide
  once the population label is replaced by a generic index ``a`` are one block, headed "[E, I]".
* ``symbol_table``: a definition (meaning, formula) for every symbol and function that appears.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy.core.function import AppliedUndef

from . import sde

#: Placeholder for the population label in entry titles (replaced by "E", or "a" in a merged block).
POP = "\x00POP\x00"


class Phi(sp.Function):
    """Phi(y) = (1 + erf(y / sqrt 2)) / 2, the standard normal CDF (display only)."""

    nargs = 1

    def _sympystr(self, printer):
        return f"Phi({printer._print(self.args[0])})"

    def _latex(self, printer, exp=None):
        s = rf"\Phi\left({printer._print(self.args[0])}\right)"
        return s if exp is None else rf"{s}^{{{exp}}}"

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm, stringPict
        func = prettyForm("Phi")
        args = prettyForm(*printer._print_seq(self.args).parens())
        pform = prettyForm(binding=prettyForm.FUNC, *stringPict.next(func, args))
        pform.prettyFunc, pform.prettyArgs = func, args
        return pform

    def fdiff(self, argindex=1):
        y = self.args[0]
        return sp.exp(-y ** 2 / 2) / sp.sqrt(2 * sp.pi)


def _to_phi(e):
    if not isinstance(e, sp.Basic) or e.is_Atom or not e.has(sp.erf, sp.erfc):
        return e
    args = [_to_phi(a) for a in e.args]
    if isinstance(e, sp.erf):
        return 2 * Phi(sp.sqrt(2) * args[0]) - 1
    if isinstance(e, sp.erfc):
        return 2 * Phi(-sp.sqrt(2) * args[0])
    new = e.func(*args)
    if isinstance(new, sp.Mul) and any(isinstance(f, sp.Add) and f.has(Phi) for f in new.args):
        new = sp.expand_mul(new, deep=False)
    return new


def to_display(obj):
    """``obj`` (expression, Matrix, Array, Eq) with erf/erfc written through Phi."""
    if obj is None:
        return None
    if isinstance(obj, (sp.MatrixBase, sp.NDimArray)):
        return obj.applyfunc(_to_phi)
    return _to_phi(sp.sympify(obj))


# ---- population labels ------------------------------------------------------------------------------

#: Names of the derived per-population symbols and functions, "{a}" the population label.
_POP_FAMILIES = [r"lambda_{a}", r"Lambda_{a}_\d+", r"avg_f\d+_{a}", r"gbar_{a}", r"D_{a}", r"Lg_{a}"]


def _family_match(name: str, label: str):
    for pat in _POP_FAMILIES:
        rx = "^" + pat.replace("{a}", "(?P<lab>" + re.escape(label) + ")") + "$"
        m = re.match(rx, name)
        if m:
            return m
    return None


def relabel(obj, old: str, new: str):
    """Replace the label ``old`` by ``new`` in the derived per-population symbols of ``obj``
    (lambda_E -> lambda_a, avg_f0_E -> avg_f0_a); model parameters (H_E) are left alone."""
    if obj is None or old == new:
        return obj

    def rename(name):
        m = _family_match(name, old)
        if not m:
            return None
        return name[:m.start("lab")] + new + name[m.end("lab"):]

    def one(e):
        e = sp.sympify(e)
        rep = {}
        for s in e.free_symbols:
            if isinstance(s, sp.Symbol) and (n := rename(s.name)):
                rep[s] = sp.Symbol(n, **s.assumptions0)
        for f in e.atoms(AppliedUndef):
            if (n := rename(f.func.__name__)):
                rep[f] = sp.Function(n, real=True)(*[a.xreplace(rep) for a in f.args])
        return e.xreplace(rep) if rep else e

    if isinstance(obj, (sp.MatrixBase, sp.NDimArray)):
        return obj.applyfunc(one)
    return one(obj)


def generic_label(names) -> str:
    for c in "abcdefghkqrsuvz":
        if c not in names:
            return c
    return "pop"


# ---- entries and blocks -----------------------------------------------------------------------------

@dataclass
class Entry:
    """One printed equation.  ``title`` may hold POP (the population label); ``obj`` None: the
    title alone (a refusal, a skipped step)."""

    slot: str
    title: str
    obj: object = None
    pop: str | None = None


@dataclass
class Block:
    """One printed block: ``pops`` the populations it stands for ([] for model-level equations);
    ``label`` what replaces the population label in title and symbols ('E', or 'a' when merged)."""

    title: str
    obj: object
    pops: list = field(default_factory=list)
    label: str | None = None
    slot: str = "model"
    template: str = ""          # the title with POP for the population label

    @property
    def header(self) -> str:
        return f"[{', '.join(self.pops)}] " if self.pops else ""


def entries(d):
    """The derived equations in reading order, as ``render_common.Entry`` objects: per-population
    ones carry the population (``pop``) and a title with the placeholder ``render_common.POP``."""
    model = d.model
    out = []
    x = model.state
    for name, pd in d.populations.items():
        pop = model.population(name)

        def add(slot, title, obj=None):
            out.append(Entry(slot, title, obj, name))

        add("drift", "Itô drift f", pd.ito_drift)
        add("sigma", "diffusion sigma", pd.diffusion)
        add("fp_velocity", f"Fokker–Planck flux J = V p - (1/2) D grad p, velocity V (with u + lambda_{POP})",
            pd.fp_velocity)
        add("fp_diffusion", "Fokker–Planck flux, (1/2) D = (1/2) sigma sigma^T", pd.diffusion_tensor / 2)
        p = sp.Function("p", real=True)(*x)
        add("fp", "Fokker–Planck equation, d_t p =",
            sde.fokker_planck(model, pop, p, sp.Symbol(f"lambda_{name}", real=True)))
        add("gain", "gain g", pd.gain)
        add("gain_slope", f"gain slope dg/d{x[model.input_component].name}", pd.gain_slope)
        add("gain_generator", "generator on the gain L g", pd.gain_generator)
        if pd.milstein is not None:
            add("milstein", "Milstein tensor L^j sigma_ik [i][j][k]", sp.Array(pd.milstein))
        else:
            add("milstein", f"Milstein: refused ({pd.milstein_refusal.replace(f'population {name}', f'population {POP}')})")
        add("mean", "mean equation, d_t mbar =", pd.mean_rhs)
        add("fluctuation", "fluctuation drift", pd.fluctuation_drift)
        if pd.stationary_skipped:
            add("stationary", "stationary density: skipped ("
                + pd.stationary_skipped.replace(f"population {name}", f"population {POP}") + ")")
        if pd.stationary is not None:
            st = pd.stationary
            if st.closed_form:
                add("stationary", f"stationary log density (fixed lambda_{POP})", st.log_density())
            else:
                add("stationary", f"stationary potential integrand, 2 (f + u + lambda_{POP}) / sigma^2 "
                    "(no closed form: quadrature)", st.integrand0 + st.lam * st.integrand1)
        if pd.field is not None:
            fs = pd.field
            add("field_m", "neural field, d_t m =", fs.mean_rhs)
            add("field_C", "neural field, d_t C =", fs.cov_rhs)
            if fs.G is not None:
                add("field_G", "G(m, C) = E g", fs.G)
            else:
                add("field_G", "G(m, C) = E g: no closed form (Gauss–Hermite quadrature)")
        else:
            add("field_m", f"neural field: not exact ({pd.linear_reason})")

    def glob(title, obj=None):
        out.append(Entry("model", title, obj))

    ks = d.kernels
    if ks.separable:
        for (a, b), s in ks.separations.items():
            glob(f"kernel w[{a},{b}] separated, rank {s.rank}", s.reconstruct())
        glob("Range(W) basis psi(theta)", sp.Matrix([ks.psi]))
        glob("constraint matrix B[(a,k),(b,l)] = alpha_b C_ab[k,l]", d.balance.B)
        for eq in d.balance.constraints:
            glob("balance (B)", eq)
        for a, r in d.balance.drive_residual.items():
            if r != 0:
                glob(f"drive h_{a} outside span(psi): residual", r)
        for eq in d.balance.multiplier:
            glob("multiplier (M)", eq)
        for atoms, block in d.modes:
            glob(f"fast matrix W D, mode {atoms}", block)
    else:
        for pair, why in ks.failures.items():
            glob(f"kernel w[{pair[0]},{pair[1]}] does not split ({why}); handled numerically",
                 model.kernel[pair])
    return out


def _canonical_title(title: str, pop: str) -> str:
    return title.replace(f"population {pop}", f"population {POP}")


def blocks(entries, names) -> list[Block]:
    """Group the per-population entries slot by slot: equal after relabelling -> one block."""
    gen = generic_label(names)
    out, done = [], set()
    order = []
    for e in entries:
        if e.pop is None:
            order.append(("model", e))
        elif e.slot not in done:
            done.add(e.slot)
            order.append(("slot", e.slot))
    for kind, item in order:
        if kind == "model":
            out.append(Block(item.title, item.obj, template=item.title))
            continue
        groups = []     # [(canonical title, canonical obj, [entries])]
        for e in (x for x in entries if x.pop is not None and x.slot == item):
            ct, co = _canonical_title(e.title, e.pop), relabel(e.obj, e.pop, gen)
            for g in groups:
                if g[0] == ct and g[1] == co:
                    g[2].append(e)
                    break
            else:
                groups.append((ct, co, [e]))
        for ct, co, es in groups:
            if len(es) == 1:
                e = es[0]
                out.append(Block(e.title.replace(POP, e.pop), e.obj, [e.pop], e.pop, e.slot, ct))
            else:
                out.append(Block(ct.replace(POP, gen), co, [e.pop for e in es], gen, item, ct))
    return out


# ---- symbols ----------------------------------------------------------------------------------------

def atoms_of(obj):
    """(symbols, applied undefined functions, uses Phi) of a printed object."""
    if obj is None:
        return set(), set(), False
    if isinstance(obj, (sp.MatrixBase, sp.NDimArray)):
        items = list(obj)
    else:
        items = [sp.sympify(obj)]
    syms, funcs, phi = set(), set(), False
    for e in items:
        e = sp.sympify(e)
        syms |= {s for s in e.free_symbols if isinstance(s, sp.Symbol)}
        funcs |= e.atoms(AppliedUndef)
        phi = phi or e.has(Phi)
    return syms, funcs, phi


@dataclass
class SymbolDef:
    """One line of the Symbols section: ``objs`` the SymPy atoms it defines (printed by the
    renderer), ``text`` its meaning and formula as plain text, ``latex`` the same in LaTeX
    (text mode, math in $...$)."""

    objs: list
    text: str
    latex: str
    key: tuple = ()


def _pop_family(name):
    """(family, label, index) of a derived per-population name, or None."""
    pats = [("lambda", r"^lambda_(?P<lab>[^_]+)$"), ("Lambda", r"^Lambda_(?P<lab>[^_]+)_(?P<idx>\d+)$"),
            ("avg_f", r"^avg_f(?P<idx>\d+)_(?P<lab>[^_]+)$"), ("gbar", r"^gbar_(?P<lab>[^_]+)$"),
            ("D", r"^D_(?P<lab>[^_]+)$"), ("Lg", r"^Lg_(?P<lab>[^_]+)$")]
    for fam, rx in pats:
        m = re.match(rx, name)
        if m:
            return fam, m.group("lab"), m.groupdict().get("idx")
    return None


def symbol_table(d, printed, merged_label=None) -> list[SymbolDef]:
    """A definition of every symbol and function that appears in ``printed`` (printed objects),
    in a fixed order: model symbols, derived per-population quantities, then the rest."""
    model = d.model
    names = list(model.names)
    labels = set(names) | ({merged_label} if merged_label else set())
    syms, funcs, uses_phi = set(), set(), False
    for obj in printed:
        s, f, p = atoms_of(obj)
        syms |= s
        funcs |= f
        uses_phi = uses_phi or p
    state = {s.name: i for i, s in enumerate(model.state)}
    theta = {s.name for s in model.space.theta}
    phi = {s.name for s in model.space.phi}
    params = {k.name: v for k, v in model.parameters.items()}
    e_name = model.state[model.input_component].name
    ring = not model.space.theta == ()
    pos = "θ, t" if ring else "t"
    lpos = r"\theta, t" if ring else "t"
    fpos = "φ, t" if ring else "t"                       # the sending position (integration variable)
    lfpos = r"\phi, t" if ring else "t"
    at, lat = (" at position φ", r" at position $\phi$") if ring else ("", "")
    psi = list(d.kernels.psi) if d.kernels.separable else []

    buckets: dict = {}       # key -> list of atoms

    def put(key, atom):
        buckets.setdefault(key, []).append(atom)

    unknown = []
    for s in sorted(syms, key=lambda a: a.name):
        n = s.name
        fam = _pop_family(n)
        if n in state:
            put((0, "state"), s)
        elif n in theta:
            put((1, "theta"), s)
        elif n in phi:
            put((2, "phi"), s)
        elif n == "t":
            put((3, "t"), s)
        elif n in params:
            put((4, "param"), s)
        elif fam and fam[1] in labels and fam[0] in ("lambda", "Lambda", "D"):
            put((10, fam[0] + "_sym"), s)
        elif n.startswith("mbar_") and n[5:] in state:
            put((20, "mbar"), s)
        elif n.startswith("y_") and n[2:] in state:
            put((21, "y"), s)
        elif n.startswith("m_") and n[2:] in state:
            put((22, "m"), s)
        elif n.startswith("C_") and all(p in state for p in n[2:].split("_")):
            put((23, "C"), s)
        else:
            unknown.append(s)
    for f in sorted(funcs, key=sp.default_sort_key):
        n = f.func.__name__
        fam = _pop_family(n)
        if n == "p":
            put((30, "p"), f)
        elif fam and fam[1] in labels:
            put((11, fam[0] + "_fn"), f)
        else:
            unknown.append(f)

    f_of = {p.name: d.populations[p.name].ito_drift for p in model.populations}
    drifts = "; ".join(f"f_{a} = {sp.sstr(list(to_display(f_of[a])))}" for a in names)
    ldrifts = "; ".join(rf"$f_{{{a}}} = {sp.latex(to_display(f_of[a]).T)}$" for a in names)
    psi_txt = ", ".join(f"ψ_{j} = {sp.pretty(p, use_unicode=True)}" for j, p in enumerate(psi))
    psi_tex = ", ".join(rf"$\psi_{{{j}}} = {sp.latex(p)}$" for j, p in enumerate(psi))
    space_txt = {"point": "", "ring": " on the ring [0, 2π)", "torus2": " on the torus [0, 2π)^2"}.get(
        model.space.kind, "")
    space_tex = {"point": "", "ring": r" on the ring $[0, 2\pi)$",
                 "torus2": r" on the torus $[0, 2\pi)^2$"}.get(model.space.kind, "")
    defs = {
        "state": ("state of one neuron" + (f" (the synaptic input and λ enter component {e_name})"
                                            if model.m > 1 else ", which receives the synaptic input"),
                  "state of one neuron" + (rf" (the synaptic input and $\lambda$ enter component ${e_name}$)"
                                           if model.m > 1 else ", which receives the synaptic input")),
        "theta": ("position of the receiving neuron" + space_txt,
                  "position of the receiving neuron" + space_tex),
        "phi": ("position of the sending neuron" + space_txt + " (integration variable)",
                "position of the sending neuron" + space_tex + " (integration variable)"),
        "t": ("time", "time"),
        "param": ("model parameters, default values: " + ", ".join(
            f"{k} = {params[k]:g}" for k in sorted(params)),
            "model parameters, default values: " + ", ".join(
            f"${sp.latex(sp.Symbol(k))} = {params[k]:g}$" for k in sorted(params))),
        "lambda_sym": (f"multiplier of population a: the O(1) net recurrent input left after the "
                       f"balance, λ_a({pos}) = lim √n r_a({pos}) (DESIGN.md §2), fixed by (M)"
                       + (", λ_a = Σ_j Λ_a_j ψ_j(θ)" if ring and psi else ""),
                       r"multiplier of population $a$: the $O(1)$ net recurrent input left after the "
                       rf"balance, $\lambda_a({lpos}) = \lim_{{n\to\infty}} \sqrt{{n}}\, r_a({lpos})$ "
                       r"(DESIGN.md, section 2), fixed by (M)"
                       + (r", $\lambda_a = \sum_j \Lambda_{a j} \psi_j(\theta)$" if ring and psi else "")),
        "Lambda_sym": ("coefficient of the multiplier on the basis of Range(W), the unknowns of (M): "
                       f"λ_a({pos}) = Σ_j Λ_a_j ψ_j" + ("(θ), " if ring else ", ") + psi_txt,
                       r"coefficient of the multiplier on the basis of $\mathrm{Range}(W)$, the unknowns "
                       rf"of (M): $\lambda_a({lpos}) = \sum_j \Lambda_{{a j}} \psi_j" + (r"(\theta)$, " if ring else "$, ") + psi_tex),
        "D_sym": ("mean gain slope of population a taken constant in space: D_a = ⟨∂g_a/∂"
                  f"{e_name}⟩ (the fast matrix W D, DESIGN.md §2)",
                  r"mean gain slope of population $a$ taken constant in space: "
                  rf"$D_a = \langle \partial g_a / \partial {e_name} \rangle$ (the fast matrix $W D$, "
                  r"DESIGN.md, section 2)"),
        "avg_f_fn": (f"population average of component i of the Itô drift: avg_fi_a({pos}) = ⟨f_i⟩_a = "
                     f"∫ f_i(x) p_a(x, {pos}) dx (i = 0, 1, ... the state components); " + drifts,
                     r"population average of component $i$ of the It\^o drift: "
                     rf"$\langle f_i \rangle_a({lpos}) = \int f_i(x)\, p_a(x, {lpos})\, dx$ "
                     r"($i = 0, 1, \dots$ the state components); " + ldrifts),
        "gbar_fn": (f"average activity of population a{at}: gbar_a({fpos}) = ∫ g_a(x) "
                    f"p_a(x, {fpos}) dx (the unknown of the balance (B))",
                    rf"average activity of population $a${lat}: "
                    rf"$\bar{{g}}_a({lfpos}) = \int g_a(x)\, p_a(x, {lfpos})\, dx$ (the unknown of the balance (B))"),
        "D_fn": (f"mean gain slope of population a{at}: D_a({fpos}) = ∫ ∂g_a/∂{e_name}(x) p_a(x, {fpos}) dx "
                 "(multiplies λ in (M))",
                 rf"mean gain slope of population $a${lat}: "
                 rf"$D_a({lfpos}) = \int \partial g_a / \partial {e_name}(x)\, p_a(x, {lfpos})\, dx$ "
                 r"(multiplies $\lambda$ in (M))"),
        "Lg_fn": ("population average of the generator applied to the gain: "
                  f"Lg_a({fpos}) = ∫ (L_a g_a)(x) p_a(x, {fpos}) dx, L_a g_a = (f_a + u_a e)·∇g_a + ½ tr(σ_a σ_aᵀ Hess g_a) "
                  "(printed as 'generator on the gain L g')",
                  r"population average of the generator applied to the gain: "
                  rf"$\langle L g \rangle_a({lfpos}) = \int (L_a g_a)(x)\, p_a(x, {lfpos})\, dx$, "
                  r"$L_a g_a = (f_a + u_a e) \cdot \nabla g_a + \frac{1}{2} "
                  r"\operatorname{tr}(\sigma_a \sigma_a^T \nabla^2 g_a)$ (the generator on the gain above)"),
        "mbar": (f"mean state of population a (per state component): mbar = ∫ x p_a(x, {pos}) dx; the "
                 "split x = mbar + y (DESIGN.md §3)",
                 r"mean state of population $a$ (per state component): "
                 rf"$\bar{{m}} = \int x\, p_a(x, {lpos})\, dx$; the split $x = \bar{{m}} + y$ (DESIGN.md, section 3)"),
        "y": ("fluctuation around the mean state: y = x − mbar",
              r"fluctuation around the mean state: $y = x - \bar{m}$"),
        "m": ("mean of the Gaussian density of the neural field (per state component, DESIGN.md §5)",
              r"mean of the Gaussian density of the neural field (per state component, DESIGN.md, section 5)"),
        "C": ("covariance of the Gaussian density of the neural field (per pair of state components)",
              "covariance of the Gaussian density of the neural field (per pair of state components)"),
        "p": (f"density of the states of population a at its position and time: p = p_a(x, {pos}), "
              "the unknown of the Fokker–Planck equation",
              r"density of the states of population $a$ at its position and time: "
              rf"$p = p_a(x, {lpos})$, the unknown of the Fokker--Planck equation"),
    }
    out = []
    if merged_label:
        labs = ", ".join(names)
        out.append(SymbolDef([], f"{merged_label}: the population index of a block headed by several "
                                 f"populations ([{labs}]): read {merged_label} = each of them",
                             rf"${merged_label}$: the population index of a block headed by several "
                             rf"populations ([{labs}]): read ${merged_label}$ = each of them",
                             key=("label",)))
    for key in sorted(buckets):
        text, latex = defs[key[1]]
        out.append(SymbolDef(buckets[key], text, latex, key=key))
    if uses_phi:
        out.append(SymbolDef([Phi(sp.Symbol("y"))],
                             "standard normal cumulative distribution function, "
                             "Phi(y) = (1 + erf(y/√2))/2 = ∫_{-∞}^y exp(-s²/2)/√(2π) ds",
                             r"standard normal cumulative distribution function, "
                             r"$\Phi(y) = \frac{1}{2}\left(1 + \operatorname{erf}(y/\sqrt{2})\right) = "
                             r"\int_{-\infty}^{y} e^{-s^2/2} \frac{ds}{\sqrt{2\pi}}$", key=("Phi",)))
    for u in unknown:
        out.append(SymbolDef([u], "undocumented symbol (please report)", "undocumented symbol (please report)",
                             key=("unknown",)))
    return out


#: The letters of the block titles (not SymPy atoms): text and LaTeX.
NOTATION = [
    ("f", "f", "Itô drift of the population (the Stratonovich correction added if the model is Stratonovich)",
     r"It\^o drift of the population (the Stratonovich correction added if the model is Stratonovich)"),
    ("sigma", r"\sigma", "diffusion matrix (m × q): dx = ... dt + sigma dW",
     r"diffusion matrix ($m \times q$): $dx = \dots dt + \sigma\, dW$"),
    ("D", "D", "in the Fokker–Planck titles the diffusion tensor sigma sigma^T (the flux carries (1/2) D); "
     "in 'fast matrix W D' the diagonal matrix of the mean gain slopes D_a",
     r"in the Fokker--Planck titles the diffusion tensor $\sigma \sigma^T$ (the flux carries "
     r"$\frac{1}{2} D$); in the fast matrix $W D$ the diagonal matrix of the mean gain slopes $D_a$"),
    ("J, V", "J, V", "probability flux J = V p − (1/2) D ∇p and its velocity V = f + (u + λ) e − div(D/2)",
     r"probability flux $J = V p - \frac{1}{2} D \nabla p$ and its velocity "
     r"$V = f + (u + \lambda) e - \nabla\cdot(D/2)$"),
    ("g, L g", "g, L g", "gain (activity of one neuron); L the generator, L g = (f + u e)·∇g + ½ tr(D Hess g)",
     r"gain (activity of one neuron); $L$ the generator, "
     r"$L g = (f + u e)\cdot\nabla g + \frac{1}{2}\operatorname{tr}(D \nabla^2 g)$"),
    ("u, h, e", "u, h, e", "O(1) input, O(√n) drive, unit vector of the input component",
     r"$O(1)$ input, $O(\sqrt{n})$ drive, unit vector of the input component"),
    ("G(m, C)", "G(m, C)", "E g(m + C^(1/2) Z), Z standard normal: the average activity of the neural field",
     r"$E\, g(m + C^{1/2} Z)$, $Z$ standard normal: the average activity of the neural field"),
    ("w, psi, B, W", r"w, \psi, B, W", "kernels w_ab(θ, φ) = Σ C_ab[k,l] ψ_k(θ) χ_l(φ); ψ the basis of "
     "Range(W); B[(a,k),(b,l)] = α_b C_ab[k,l]; (W q)_a = Σ_b α_b ∫ w_ab q_b dφ/|Ω|",
     r"kernels $w_{ab}(\theta, \phi) = \sum C_{ab}[k,l] \psi_k(\theta) \chi_l(\phi)$; $\psi$ the basis of "
     r"$\mathrm{Range}(W)$; $B[(a,k),(b,l)] = \alpha_b C_{ab}[k,l]$; "
     r"$(W q)_a = \sum_b \alpha_b \int w_{ab} q_b\, d\phi/|\Omega|$"),
    ("(B), (M)", "(B), (M)", "balance W gbar + h = 0 and multiplier equation W(⟨L g⟩ + D λ) + d_t h = 0",
     r"balance $W \bar{g} + h = 0$ and multiplier equation "
     r"$W(\langle L g\rangle + D \lambda) + \partial_t h = 0$"),
]
