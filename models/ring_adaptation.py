"""ring_adaptation: E and I on the ring, each neuron a membrane variable x with an adaptation current a.

Space Ring(theta, phi), state (x, a), synaptic input into x, noise on x only (hypoelliptic), Itô SDE
    dx = (-x - a + lambda) dt + s dW,      da = (x - a) / tau_a dt,
gain g = Phi(x) (standard normal CDF), alpha = 1 per population, and the connectivity and drive of
ring_ei:  w_ab(theta, phi) = +-J_ab (1 + eps_b cos(theta - phi)),  h_a(theta) = H_a (1 + delta cos theta),
J = [[1, 2], [1, 1.8]], eps = (0.6, 0.9), H = (0.1, 0.06), delta = 0.2, s = 1, tau_a = 2.
The drift is linear and the noise additive, so the neural field (DESIGN.md §5, §5b) is exact, also at
finite n: with A = [[-1, -1], [1/tau_a, -1/tau_a]] and Q = diag(s^2, 0) the stationary covariance solves
A C + C A^T + Q = 0,
    C_xx = s^2 (1 + 2 tau_a) / (4 (1 + tau_a)) = 5/12,   C_xa = C_aa = s^2 / (4 (1 + tau_a)) = 1/12,
the stationary means are m_a = m_x = lambda / 2 (the adaptation takes half the input), and
gbar = Phi(m_x / sqrt(1 + C_xx)) = Phi(lambda / (2 sqrt(17/12))).

Why a balanced state exists: W and h are those of ring_ei, so (B) demands the same activities,
gbar_b = g0_b + g1_b cos theta with g0 = (0.3, 0.2) (constant mode, M0 = [[1, -2], [1, -1.8]], det 0.2)
and g1 = (0.2, 0.0889) (cos mode, M1 = M0 diag(eps) / 2, det 0.027): gbar_E over [0.10, 0.50] and gbar_I
over [0.111, 0.289], strictly inside (0, 1).  The adaptation changes only the map from lambda to gbar
(the factor 2 sqrt(17/12) above), which is strictly increasing and onto (0, 1), so lambda in
Range(W) = span{1, cos theta, sin theta} follows by matching the constant and cos coefficients:
    lambda_E(theta) = -1.3661 + 1.4510 cos theta,   lambda_I(theta) = -2.0563 + 0.7729 cos theta,
with the stationary means m_x (= m_a) at theta = 0, pi/2, pi
E: 0.0425, -0.6830, -1.4085 (gbar 0.514, 0.283, 0.118);  I: -0.6417, -1.0282, -1.4146 (gbar 0.295,
0.194, 0.117).  (The realised gbar has small cos 2theta parts, 0.0166 and 0.0061, outside Range(W).)

Why it is stable.  Fast: the multiplier enters x and the gain depends on x, so the imbalance relaxes
through W D, D_b = <Phi'(x)> > 0, exactly as in ring_ei: per Fourier mode the blocks M0 diag(D) and
M0 diag(eps D) / 2 have positive determinants (0.2 D_E D_I, 0.027 D_E D_I) and negative traces at the
slopes of this state, D = (0.2673, 0.2292) on average over theta (D_E in [0.166, 0.335], D_I in
[0.165, 0.290]); the full 6 x 6 matrix of W D on Range(W) has eigenvalues -0.0857, -0.0830,
-0.0754 +- 0.0844i, -0.0206, -0.0162.  Slow: on the manifold the activities in Range(W) are pinned, so
the constrained modes of x are held while their adaptation relaxes at rate 1/tau_a, and the modes of x
outside Range(W) are free single neurons with the eigenvalues of A, -0.75 +- 0.6614i (trace
-(1 + 1/tau_a) < 0, determinant 2 / tau_a > 0 for every tau_a > 0); the covariance relaxes with A as
well.  The linearised finite-n mean equation at n = 1e12 (solvers.field.FieldSolver.finite_n_spectrum)
shows exactly this split: six eigenvalues sqrt(n) x (those of W D) and the slow ones -0.5 and
-0.75 +- 0.6614i.

Finite n (DESIGN.md §4, §5b): at n = 2000 the finite-n field gives ring-averaged gbar = (0.2021,
0.1735) and mean x = (-1.0046, -1.1231), far from the balanced 0.300 and 0.200, stable with leading
eigenvalue -0.581 +- 0.063i; gbar_E at theta = pi/2 is 0.1993 (balanced: 0.2830).  Particles at
n = 2000 (4 seeds x 5 batches of [15, 50], dt = 0.01 Richardson-extrapolated with 2 dt on the same
Brownian path) gave ring-averaged gbar_E = 0.2020 +- 0.0002, gbar_E(pi/2) = 0.1997 +- 0.0008 and mean
x_E = -1.0050 +- 0.0008; the Euler step alone (dt = 0.01) is biased by -0.0004 in gbar_E.  With
tau_a = 5 (--param tau_a=5): field 0.2016 (ring average) and 0.1990 (pi/2), particles 0.2015 +- 0.0002
and 0.1994 +- 0.0010.  tests/test_field_m2.py compares field and particles within sampling error.
"""
import sympy as sp

from derive import Model, Phi, Population, Ring

x, a = sp.symbols("x a")
theta, phi = sp.symbols("theta phi")
J_EE, J_EI, J_IE, J_II = sp.symbols("J_EE J_EI J_IE J_II")
eps_E, eps_I, H_E, H_I, delta, s, tau_a = sp.symbols("eps_E eps_I H_E H_I delta s tau_a")

drift = [-x - a, (x - a) / tau_a]
noise = [[s], [0]]

model = Model(
    name="ring_adaptation",
    state=[x, a],
    space=Ring(theta, phi),
    populations=[
        Population("E", drift=drift, diffusion=noise, gain=Phi(x),
                   drive=H_E * (1 + delta * sp.cos(theta)), fraction=1),
        Population("I", drift=drift, diffusion=noise, gain=Phi(x),
                   drive=H_I * (1 + delta * sp.cos(theta)), fraction=1),
    ],
    kernel={
        ("E", "E"): J_EE * (1 + eps_E * sp.cos(theta - phi)),
        ("E", "I"): -J_EI * (1 + eps_I * sp.cos(theta - phi)),
        ("I", "E"): J_IE * (1 + eps_E * sp.cos(theta - phi)),
        ("I", "I"): -J_II * (1 + eps_I * sp.cos(theta - phi)),
    },
    parameters={J_EE: 1.0, J_EI: 2.0, J_IE: 1.0, J_II: 1.8,
                eps_E: 0.6, eps_I: 0.9, H_E: 0.1, H_I: 0.06, delta: 0.2, s: 1.0, tau_a: 2.0},
)
