"""The rendering of `balkin derive` (``render``), and its text form (SymPy's unicode pretty printer): the model, the equations
(blocks identical across populations printed once, headed "[E, I]"), the symbols that appear, and the
notation of the block titles."""
from __future__ import annotations

import sympy as sp

from .render_common import NOTATION, atoms_of, blocks, entries, symbol_table, to_display


def _s(expr) -> str:
    return sp.sstr(to_display(expr))


def model_summary(model) -> str:
    """The model as given (erf written through Phi); the first line names the model."""
    lines = [f"Model {model.name!r}: state {[s.name for s in model.state]}, space {model.space!r}, "
             f"noise {model.noise}, synaptic input into {model.state[model.input_component].name}"]
    for p in model.populations:
        lines.append(f"  population {p.name} (fraction {_s(p.fraction)}): drift {_s(list(p.drift))}, "
                     f"diffusion {_s(p.diffusion.tolist())}, gain {_s(p.gain)}, drive {_s(p.drive)}, "
                     f"input {_s(p.input)}")
    for a in model.names:
        for b in model.names:
            if (a, b) in model.kernel:
                lines.append(f"  kernel w[{a},{b}] = {_s(model.kernel[(a, b)])}")
            else:
                lines.append(f"  kernel w[{a},{b}] = 0  (missing pair: zero coupling)")
    if model.parameters:
        lines.append("  parameters: " + ", ".join(
            f"{k.name}={v}" for k, v in sorted(model.parameters.items(), key=lambda kv: kv[0].name)))
    return "\n".join(lines)


def pretty(obj) -> str:
    return sp.pretty(obj, use_unicode=True, wrap_line=False)


def render(d, latex=False) -> str:
    """What `balkin derive` prints: the text rendering, or with ``latex`` the LaTeX document
    (render_latex.render_latex).  Blocks identical across populations are printed once (headed
    "[E, I]"), erf is written through Phi, and a Symbols section defines every symbol that appears."""
    if latex:
        from .render_latex import render_latex
        return render_latex(d)
    return render_text(d)


def render_text(d) -> str:
    model = d.model
    bl = blocks(entries(d), model.names)
    merged = next((b.label for b in bl if len(b.pops) > 1), None)
    lines = [model_summary(model), ""]
    head = "== Equations"
    if merged:
        head += (f" (a block headed [{', '.join(model.names)}] holds for each of those populations, "
                 f"with {merged} its label)")
    lines += [head + " ==", ""]
    printed = []
    for b in bl:
        obj = to_display(b.obj)
        if obj is None:
            lines.append(f"{b.header}{b.title}\n")
        else:
            printed.append(obj)
            lines.append(f"{b.header}{b.title}:\n{pretty(obj)}\n")
    lines += ["== Symbols ==", ""]
    for sd in symbol_table(d, printed, merged):
        names = ", ".join(pretty(o) for o in sd.objs)
        lines.append(f"{names}: {sd.text}" if names else sd.text)
    lines += ["", "== Notation of the titles ==", ""]
    for name, _, text, _ in NOTATION:
        lines.append(f"{name}: {text}")
    return "\n".join(lines) + "\n"


__all__ = ["render", "render_text", "model_summary", "pretty", "atoms_of"]
