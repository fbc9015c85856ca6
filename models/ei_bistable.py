"""ei_bistable: E and I without inhibition dominance, no space: at finite n the network is bistable
and its stationary branch folds (saddle-node bifurcations in the drive h_E).

No space, one state variable, f = -x, sigma = 1, gain g = Phi (standard normal CDF), alpha = 1 per
population, w = [[J_EE, -J_EI], [J_IE, -J_II]] = [[2, -1], [1, -1]], h = (h_E, h_I) = (-0.2, 0.3).

The balanced limit exists but is a saddle.  W is invertible (det W = -1), so h lies in Range(W) and
(B) demands gbar = -W^{-1} h = (h_I - h_E, 2 h_I - h_E) = (0.5, 0.8), inside the range (0, 1) of Phi
(for every h_E in (2 h_I - 1, h_I) = (-0.4, 0.3)).  But det(W D) = D_E D_I det W < 0 for any slopes
D > 0: W D always has one real positive eigenvalue, so the balanced state is never attracting
(verdict unstable-real); excitation is not held in check by inhibition.

At finite n (lambda_n = sqrt(n) (W gbar + h), DESIGN.md section 4) the stationary means m solve
m / sqrt(n) = W Phi(m / c) + h, c = sqrt(3/2), and the deciding matrix is -I + sqrt(n) W D.  At
n = 100 this has an S-shaped branch in h_E (h_I = 0.3): parametrised by m_E (m_I from the I equation,
which is monotone in m_I), h_E(m_E) rises to a maximum 0.0842373 at m_E = -2.048 and falls to a
minimum -0.7205587 at m_E = 2.307 before rising again (tests/test_sweep.py computes both folds this
way).  So for -0.72056 < h_E < 0.08424 there are three stationary states: a low-activity one and a
high-activity one (both attracting: every eigenvalue of -I + 10 W D has negative real part) and the
middle one between them, which is the continuation of the balanced saddle (one real eigenvalue > 0).
At each end of that interval two of them meet in a saddle-node: a real eigenvalue of -I + sqrt(n) W D
crosses 0 there.  The default h_E = -0.2 lies inside the bistable interval.

    balkin sweep ei_bistable --n 100 --param h_E=-1:0.4:15 --plots figs

continues the low branch up to the fold, goes round it by pseudo-arclength, follows the middle branch
back to the other fold and the high branch forward again, and draws the S-curve (stable solid,
unstable dashed).
"""
import sympy as sp

from derive import Model, Phi, Point, Population

x = sp.Symbol("x")
J_EE, J_EI, J_IE, J_II, h_E, h_I = sp.symbols("J_EE J_EI J_IE J_II h_E h_I")

model = Model(
    name="ei_bistable",
    state=[x],
    space=Point(),
    populations=[
        Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=h_E, fraction=1),
        Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=h_I, fraction=1),
    ],
    kernel={("E", "E"): J_EE, ("E", "I"): -J_EI, ("I", "E"): J_IE, ("I", "I"): -J_II},
    parameters={J_EE: 2.0, J_EI: 1.0, J_IE: 1.0, J_II: 1.0, h_E: -0.2, h_I: 0.3},
)
