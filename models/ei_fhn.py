"""ei_fhn: E and I populations of FitzHugh–Nagumo-like neurons (v, w), no space, noise on v only.

No space, state (v, w), synaptic input into v, Itô SDE per neuron
    dv = (v - v^3/3 - w + lambda) dt + s dW,      dw = eps (v + c - b w) dt,
gain g = Phi(v) (standard normal CDF), alpha = 1 per population, w = [[J_EE, -J_EI], [J_IE, -J_II]] =
[[1, -2], [1.5, -2.5]], h = (0.45, 0.5), c = 0.7, b = 0.8, eps = 1.5, s = 0.8.  The drift is nonlinear (cubic)
and the noise degenerate (hypoelliptic: it enters v only, and w is driven by v since eps != 0), so neither
the neural field nor a closed-form stationary density applies: the exact limit is the 2-D kinetic
Fokker–Planck equation (the Gaussian closure of solvers.field is a poor, labelled approximation here:
it puts the balanced lambda at (0.426, 0.641) instead of (0.096, 0.437)).

The neuron.  eps = 1.5 (not the classical slow 0.08) keeps every noise-free neuron at rest: for a constant
input lambda, (i) the fixed point is unique, because v - v^3/3 - (v + c)/b + lambda is strictly decreasing
in v (derivative 1 - 1/b - v^2 < 0 as b < 1); (ii) it is stable, Jacobian [[1 - v^2, -1], [eps, -eps b]]
with determinant eps (1 - b + b v^2) > 0 and trace 1 - v^2 - eps b < 0 (eps b = 1.2 > 1); (iii) there is no
periodic orbit (Bendixson: the divergence 1 - v^2 - eps b is negative everywhere).  So there is no Hopf
regime, and with noise every neuron has one stationary density, on which <w> = (<v> + c)/b exactly.

Why a balanced state exists: det W = 0.5 != 0, so h lies in Range(W) = R^2, and (B) W gbar + h = 0 demands
gbar = (0.25, 0.35), inside the range (0, 1) of Phi.  The stationary activity gbar(lambda) of a neuron is
continuous in lambda and tends to 0 and 1 as lambda -> -inf, +inf (v follows lambda^(1/3)), so each demanded
value is attained; numerically it is increasing (dgbar/dlambda = 0.263 at the E solution).  From the
stationary 2-D Fokker–Planck equation at fixed lambda (finite volumes: Scharfetter–Gummel in v, upwind in w,
240^2 cells on [-4, 4] x [-3, 4], Richardson-extrapolated with 120^2; checked against an Euler–Maruyama
ensemble of 50000 uncoupled neurons):
    lambda = (0.0958, 0.4365),  mean v = (-0.829, -0.490),  mean w = (-0.162, 0.263),
    var v = (0.611, 0.787),  var w = (0.522, 0.712),  cov(v, w) = (0.418, 0.570),
    D = <Phi'(v)> = (0.2382, 0.2650).

Why it is stable.  Fast: with slopes D > 0, W D = [[D_E, -2 D_I], [1.5 D_E, -2.5 D_I]] has trace
D_E - 2.5 D_I and determinant 0.5 D_E D_I > 0; at the balanced state trace -0.424 and the real eigenvalues
-0.0962 and -0.3281: the imbalance decays at rates 0.096 sqrt(n) and 0.328 sqrt(n) without ringing.
Slow: on the manifold both activities are pinned (W is invertible), each neuron relaxes to its unique
stationary density at the current lambda (items (i)-(iii); the noise-free fixed points at the balanced
lambda, v = -1.140 (E) and -0.871 (I), have the eigenvalues -0.750 +- 1.139i and -0.480 +- 0.991i), and
lambda only adjusts the mean input to hold gbar; this part is
checked, not proven: particle networks settle onto the state (tests/test_models_m2.py) and the
linearised finite-n mean equation of the Gaussian closure is stable (leading eigenvalue -1.50 + 0.21i
at n = 1000).

Finite n (DESIGN.md §4).  lambda_n = sqrt(n) (W gbar(lambda_n) + h) with gbar(lambda) from the same stationary
Fokker–Planck solves (a cubic spline through 6 and 5 values of lambda), against particle networks
(solvers.particles, dt = 0.01, 2 seeds, time averages over [10, 30]; seed-to-seed differences <= 0.0004 in
gbar):
    n       gbar (FP)          gbar (particles)    lambda_n (FP)    lambda_n (particles)  mean v (FP)
    1000    (0.2780, 0.3608)   (0.2788, 0.3613)    (0.199, 0.470)   (0.194, 0.469)        (-0.732, -0.454)
    4000    (0.2665, 0.3570)   (0.2669, 0.3573)    (0.158, 0.458)   (0.154, 0.458)        (-0.772, -0.466)
    16000   (0.2591, 0.3540)   (0.2594, 0.3542)    (0.130, 0.449)   (0.127, 0.448)        (-0.798, -0.476)
so the network settles onto the finite-n state, which approaches the balanced (0.25, 0.35).  Uncoupled
neurons at the balanced lambda (J = 0, h = lambda / sqrt(n), n = 20000, 3 seeds) give gbar = (0.2504,
0.3509) +- 0.0002 and mean v = (-0.8286, -0.4874) +- 0.0006.
"""
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
