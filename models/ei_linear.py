"""ei_linear: the illustration of DESIGN.md §4.

No space, one state variable, f = -x, sigma = 1, gain g = Phi (standard normal CDF),
w = [[1, -2], [1, -1.8]], h = [0.1, 0.06], alpha = 1 per population.

Why a balanced state exists: (B) reads gE - 2 gI = -0.1, gE - 1.8 gI = -0.06, so the demanded
population activities are gbar = (0.3, 0.2), inside the range (0, 1) of Phi.  W is invertible so h
lies in Range(W).  Why it is stable: with mean slopes D = (D_E, D_I) > 0 the fast matrix W D = [[D_E, -2 D_I],
[D_E, -1.8 D_I]] has trace D_E - 1.8 D_I and determinant 0.2 D_E D_I > 0.  At the balanced state
(x ~ N(lambda, 1/2), lambda = (-0.642, -1.031)) the slopes are D = (0.2839, 0.2286), so the trace is
-0.128 < 0 and both eigenvalues, -0.0638 +- 0.0944 i, have negative real part; they are complex, so
the network rings at frequency 0.0944 sqrt(n) on its way onto the manifold.
"""
import sympy as sp

from derive import Model, Phi, Point, Population

x = sp.Symbol("x")
w_EE, w_EI, w_IE, w_II, h_E, h_I = sp.symbols("w_EE w_EI w_IE w_II h_E h_I")

model = Model(
    name="ei_linear",
    state=[x],
    space=Point(),
    populations=[
        Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=h_E, fraction=1),
        Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=h_I, fraction=1),
    ],
    kernel={("E", "E"): w_EE, ("E", "I"): w_EI, ("I", "E"): w_IE, ("I", "I"): w_II},
    parameters={w_EE: 1.0, w_EI: -2.0, w_IE: 1.0, w_II: -1.8, h_E: 0.1, h_I: 0.06},
)
