"""ei_fhn: E and I populations of FitzHugh–Nagumo-like neurons, no space.  PLACEHOLDER"""
import sympy as sp

from derive import Model, Phi, Point, Population

v, w = sp.symbols("v w")
J_EE, J_EI, J_IE, J_II, h_E, h_I = sp.symbols("J_EE J_EI J_IE J_II h_E h_I")
c, eps, b, s = sp.symbols("c eps b s")

drift = [v - v**3 / 3 - w, eps * (v + c - b * w)]
noise = [[s], [0]]

model = Model(
    name="ei_fhn",
    state=[v, w],
    space=Point(),
    populations=[
        Population("E", drift=drift, diffusion=noise, gain=Phi(v), drive=h_E, fraction=1),
        Population("I", drift=drift, diffusion=noise, gain=Phi(v), drive=h_I, fraction=1),
    ],
    kernel={("E", "E"): J_EE, ("E", "I"): -J_EI, ("I", "E"): J_IE, ("I", "I"): -J_II},
    parameters={J_EE: 1.0, J_EI: 2.0, J_IE: 1.5, J_II: 2.5, h_E: 0.45, h_I: 0.5,
                c: 0.7, eps: 1.5, b: 0.8, s: 0.8},
)
