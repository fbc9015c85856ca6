"""ring_unstable: E and I on the ring where the cos/sin mode of W D has lost stability (linear, additive).

The same structure as ring_ei (f = -x, sigma = s, gain g = Phi, alpha = 1, cosine kernels
    w_ab(theta, phi) = +-J_ab (1 + eps_b cos(theta - phi)),   h_a(theta) = H_a (1 + delta cos theta)),
with stronger coupling, a broadly tuned excitation and an almost untuned inhibition:
J = [[2, 4], [4, 4]] (w_EE = 2 (1 + cos), w_EI = -4 (1 + 0.25 cos), ...), eps = (eps_E, eps_I) = (1, 0.25),
H = (1.0, 0.4), delta = 0 (homogeneous drive), s = 1.  eps_E = 1 keeps every excitatory weight >= 0.

The balanced state exists and is homogeneous.  Constant mode, M0[a,b] = alpha_b (+-J_ab) =
[[2, -4], [4, -4]] (det 8): M0 g0 = -H gives gbar = g0 = (0.3, 0.4), inside (0, 1).  The cos mode of
h is zero (delta = 0), and M1 = M0 diag(eps_E, eps_I) / 2 = [[1, -0.5], [2, -0.5]] (det 0.5) is
invertible, so h lies in Range(W) = span{1, cos theta, sin theta} per population and the cos/sin
parts of gbar vanish.  The neural field gives C = s^2/2 = 0.5 and gbar_a = Phi(m_a / sqrt(1.5)), so
    lambda_E = m_E = sqrt(1.5) Phi^-1(0.3) = -0.642257,   lambda_I = m_I = sqrt(1.5) Phi^-1(0.4) = -0.310286,
at every theta, with mean gain slopes D_a = phi(Phi^-1(g0_a)) / sqrt(1.5) = (0.283890, 0.315447).

Why it is unstable.  The state is homogeneous, so W D splits exactly into its Fourier blocks:
  constant mode   M0 diag(D):  trace -0.6940, det 0.7164:    eigenvalues -0.3470 +- 0.7720i (stable),
  cos, sin modes  M1 diag(D):  trace 0.1262 = (eps_E D_E J_EE - eps_I D_I J_II)/2 > 0, det 0.04478:
                               eigenvalues +0.06308 +- 0.20198i   (each mode: unstable, oscillatory).
Excitation is tuned (eps_E = 1) much more sharply than inhibition (eps_I = 0.25), so in the cos/sin
modes recurrent excitation outweighs inhibition (trace > 0) while the determinant stays positive: a
Hopf-type (oscillatory) loss of stability of the balanced manifold in the first Fourier mode, while
the constant mode stays strongly inhibition-stabilised.  (With ring_ei's eps = (0.6, 0.9) the same
mode is stable; eps = (0.9, 0.6) there gives only a weak instability, 0.0034 +- 0.0397i.)

What the network does.  At size n the imbalance in the cos/sin modes evolves by
d q/dt = sqrt(n) W D q, and the mean field m' = -m + lambda_n linearises to -1 + sqrt(n) mu for each
eigenvalue mu of W D: the first Fourier mode of gbar grows at rate 0.06308 sqrt(n) - 1 while it
oscillates with angular frequency 0.20198 sqrt(n) (at n = 40000: rate 11.6, frequency 40.4, period
0.156), until the gains saturate.  Particle runs (solvers.particles, n = 40000, dt = 0.001, started at
the balanced state with x_E shifted by 0.02 cos theta; tests/test_spectrum.py) show it: the cos
coefficient of gbar_E crosses zero every 0.077-0.078 (frequency 40.5-40.8 over three seeds) while its
amplitude grows from about 0.01 to 0.15 by t = 0.27 (fitted rate 10.2-10.6); later the activity
saturates and the E population shuts off.  No balanced large-n limit exists for these parameters;
the balanced field equations (a differential-algebraic system) can still be integrated, but they do
not describe the network.
"""
import sympy as sp

from derive import Model, Phi, Population, Ring

x = sp.Symbol("x")
theta, phi = sp.symbols("theta phi")
J_EE, J_EI, J_IE, J_II = sp.symbols("J_EE J_EI J_IE J_II")
eps_E, eps_I, H_E, H_I, delta, s = sp.symbols("eps_E eps_I H_E H_I delta s")

model = Model(
    name="ring_unstable",
    state=[x],
    space=Ring(theta, phi),
    populations=[
        Population("E", drift=-x, diffusion=s, gain=Phi(x),
                   drive=H_E * (1 + delta * sp.cos(theta)), fraction=1),
        Population("I", drift=-x, diffusion=s, gain=Phi(x),
                   drive=H_I * (1 + delta * sp.cos(theta)), fraction=1),
    ],
    kernel={
        ("E", "E"): J_EE * (1 + eps_E * sp.cos(theta - phi)),
        ("E", "I"): -J_EI * (1 + eps_I * sp.cos(theta - phi)),
        ("I", "E"): J_IE * (1 + eps_E * sp.cos(theta - phi)),
        ("I", "I"): -J_II * (1 + eps_I * sp.cos(theta - phi)),
    },
    parameters={J_EE: 2.0, J_EI: 4.0, J_IE: 4.0, J_II: 4.0,
                eps_E: 1.0, eps_I: 0.25, H_E: 1.0, H_I: 0.4, delta: 0.0, s: 1.0},
)
