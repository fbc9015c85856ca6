"""ring_ei: E and I populations on the ring, cosine connectivity, tuned drive (linear, additive).

Space Ring(theta, phi), one state variable, f = -x, sigma = s (constant), gain g = Phi (standard
normal CDF), alpha = 1 per population,
    w_ab(theta, phi) = +-J_ab (1 + eps_b cos(theta - phi))   (+ for E columns, - for I columns),
    h_a(theta) = H_a (1 + delta cos theta),   u_a = 0,
J = [[1, 2], [1, 1.8]], eps = (eps_E, eps_I) = (0.6, 0.9), H = (0.1, 0.06), delta = 0.2, s = 1.
The drift is linear and the noise additive, so the neural field of DESIGN.md §5 is exact:
m_a = lambda_a, C_a = s^2/2, gbar_a = Phi(m_a / sqrt(1 + s^2/2)).

Why a balanced state exists: Range(W) = span{1, cos theta, sin theta} per population and h has
only the constant and cos modes, so (B) splits into two 2x2 systems for
gbar_b = g0_b + g1_b cos theta.
Constant mode, M0[a,b] = alpha_b (+-J_ab) = [[1, -2], [1, -1.8]] (det 0.2): M0 g0 = -H gives
g0 = (0.3, 0.2).  Cos mode, M1[a,b] = alpha_b (+-J_ab) eps_b / 2 = [[0.3, -0.9], [0.3, -0.81]]
(det 0.027): M1 g1 = -delta H = -(0.02, 0.012) gives g1 = (0.2, 0.0889).  So the demanded
gbar_E ranges over [0.10, 0.50] and gbar_I over [0.111, 0.289]: strictly inside (0, 1) at every
theta.
Both matrices are invertible, so h lies in Range(W).  Solving for lambda in Range(W) (i.e.
lambda_a = l0_a + l1_a cos theta, matching the constant and cos Fourier coefficients of
gbar_a = Phi(lambda_a / sqrt(3/2))) gives
    lambda_E(theta) = -0.7028 + 0.7465 cos theta,   lambda_I(theta) = -1.0580 + 0.3976 cos theta,
and the stationary means (= lambda, sd 0.7071) at theta = 0, pi/2, pi are
E: 0.0437, -0.7028, -1.4494 (gbar 0.514, 0.283, 0.118);  I: -0.6603, -1.0580, -1.4556
(gbar 0.295, 0.194, 0.117).  The realised gbar also has small cos 2theta parts (0.0166, 0.0061) that
lie outside Range(W) and are not constrained by (B).

Why it is stable: each Fourier mode has its own block of W D.  With slopes D > 0 the constant block
M0 diag(D_E, D_I) has trace D_E - 1.8 D_I and determinant 0.2 D_E D_I > 0; the cos (and sin) block
M0 diag(eps_E D_E, eps_I D_I) / 2 has trace (0.6 D_E - 1.62 D_I)/2 and determinant
0.027 D_E D_I > 0.  The population mean slopes, averaged over theta, are D = (0.2597, 0.2228)
(D_E ranges over [0.162, 0.326], D_I over [0.161, 0.282]); the blocks then have eigenvalues
-0.0706 +- 0.0811i (constant mode: rings on the way in) and -0.0186, -0.0839 (cos and sin modes).
With the theta-dependent D, the full 6x6 matrix of W D on Range(W) has eigenvalues
-0.0833, -0.0806, -0.0733 +- 0.0820i, -0.0201, -0.0157: all in the left half-plane.  The inhibitory
tuning eps_I > eps_E matters: with eps = (0.9, 0.6) the cos block (theta-averaged D) is unstable,
0.0034 +- 0.0397i.
"""
import sympy as sp

from derive import Model, Phi, Population, Ring

x = sp.Symbol("x")
theta, phi = sp.symbols("theta phi")
J_EE, J_EI, J_IE, J_II = sp.symbols("J_EE J_EI J_IE J_II")
eps_E, eps_I, H_E, H_I, delta, s = sp.symbols("eps_E eps_I H_E H_I delta s")

model = Model(
    name="ring_ei",
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
    parameters={J_EE: 1.0, J_EI: 2.0, J_IE: 1.0, J_II: 1.8,
                eps_E: 0.6, eps_I: 0.9, H_E: 0.1, H_I: 0.06, delta: 0.2, s: 1.0},
)
