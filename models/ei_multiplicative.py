"""ei_multiplicative: E and I, weakly bistable neurons, multiplicative noise, no space.

No space, one state variable, Itô SDE dx = [x - x^3 + lambda] dt + s sqrt(1 + x^2) dW,
gain g = 1 / (1 + exp(-beta x)) (logistic, range (0, 1)), alpha = 1 per population,
w = [[J_EE, -J_EI], [J_IE, -J_II]] = [[1, -2], [1.5, -2.5]], h = (0.45, 0.5), s = 0.8, beta = 2.
The stationary density for fixed lambda is in closed form:
    log p = (2 / s^2) (-x^2/2 + log(1 + x^2) + lambda atan x) - log(s^2 (1 + x^2)),
Gaussian tails exp(-x^2 / s^2) times a power of (1 + x^2): no heavy tails.  At s = 0.8 it is only
weakly bimodal (at lambda = 0: modes at +-0.6, a dip of 0.09 in log density at x = 0), so particles
mix quickly.

Why a balanced state exists: W has det(W) = -2.5 + 3 = 0.5 != 0, so h lies in Range(W) = R^2 and (B)
W gbar + h = 0 demands gbar = (0.25, 0.35), inside the range (0, 1) of the logistic gain.  The mean
activity at fixed lambda increases from 0 to 1 as lambda runs over R, so each population has one
lambda with the demanded activity: lambda = (-0.4827, -0.2546), stationary means (-0.7172, -0.4248),
sd (0.710, 0.820).

Why it is stable: with slopes D = <g'> = <beta g (1 - g)> > 0, W D has trace D_E - 2.5 D_I and
determinant 0.5 D_E D_I > 0.  At the balanced state D = (0.2683, 0.2954), so the trace is
-0.470 < 0 and W D = [[0.268, -0.591], [0.402, -0.739]] has the real eigenvalues -0.1100 and
-0.3603: the imbalance decays at rates 0.110 sqrt(n) and 0.360 sqrt(n) without ringing.
"""
import sympy as sp

from derive import Model, Point, Population

x = sp.Symbol("x")
J_EE, J_EI, J_IE, J_II, h_E, h_I, s, beta = sp.symbols("J_EE J_EI J_IE J_II h_E h_I s beta")

drift = x - x**3
noise = s * sp.sqrt(1 + x**2)
gain = 1 / (1 + sp.exp(-beta * x))

model = Model(
    name="ei_multiplicative",
    state=[x],
    space=Point(),
    populations=[
        Population("E", drift=drift, diffusion=noise, gain=gain, drive=h_E, fraction=1),
        Population("I", drift=drift, diffusion=noise, gain=gain, drive=h_I, fraction=1),
    ],
    kernel={("E", "E"): J_EE, ("E", "I"): -J_EI, ("I", "E"): J_IE, ("I", "I"): -J_II},
    parameters={J_EE: 1.0, J_EI: 2.0, J_IE: 1.5, J_II: 2.5, h_E: 0.45, h_I: 0.5, s: 0.8, beta: 2.0},
)
