"""ring_nonlinear: E and I on the ring: cubic drift, multiplicative noise, cosine kernels.

Space Ring(theta, phi), one state variable,
Itô SDE dx = [-x - c x^3 + lambda] dt + s sqrt(1 + x^2) dW,
gain g = Phi (standard normal CDF), alpha = 1 per population,
    w_ab(theta, phi) = +-J_ab (1 + eps_b cos(theta - phi))   (+ for E columns, - for I columns),
    h_a(theta) = H_a (1 + delta cos theta),   u_a = 0,
J = [[1, 2], [1.5, 2.5]], eps = (eps_E, eps_I) = (0.5, 0.8), H = (0.45, 0.5), delta = 0.15, c = 0.5,
s = 1.  The stationary density for fixed lambda is in closed form:
    log p = (2 / s^2) (-c x^2/2 - (1 - c)/2 log(1 + x^2) + lambda atan x) - log(s^2 (1 + x^2)),
unimodal with Gaussian tails exp(-c x^2 / s^2).  The neural field does not apply (nonlinear drift,
multiplicative noise): the stationary state comes from this density.

Why a balanced state exists: Range(W) = span{1, cos theta, sin theta} per population and h has only
the constant and cos modes, so (B) splits into two 2x2 systems for gbar_b = g0_b + g1_b cos theta.
Constant mode, M0[a,b] = alpha_b (+-J_ab) = [[1, -2], [1.5, -2.5]] (det 0.5): M0 g0 = -H gives
g0 = (0.25, 0.35).  Cos mode, M1[a,b] = alpha_b (+-J_ab) eps_b / 2 = [[0.25, -0.8], [0.375, -1.0]]
(det 0.05): M1 g1 = -delta H = -(0.0675, 0.075) gives g1 = (0.15, 0.13125).  So the demanded gbar_E
ranges over [0.10, 0.40] and gbar_I over [0.219, 0.481]: strictly inside (0, 1) at every theta,
and h lies in Range(W).  Solving for lambda in Range(W) (lambda_a = l0_a + l1_a cos theta,
matching the constant and cos Fourier coefficients of gbar_a(theta) = int Phi p) gives
    lambda_E(theta) = -1.7470 + 1.4057 cos theta,   lambda_I(theta) = -0.8488 + 0.8079 cos theta.
Stationary means (sd) at theta = 0, pi/2, pi:
E: -0.2062 (0.627), -0.8920 (0.588), -1.3179 (0.572), gbar 0.431, 0.221, 0.125;
I: -0.0249 (0.631), -0.4907 (0.613), -0.8574 (0.590), gbar 0.492, 0.338, 0.230.
(The cubic drift compresses the response of the mean to lambda, hence the wide swing of lambda_E.)

Why it is stable: each Fourier mode has its own block of W D.  With slopes D > 0 the constant block
M0 diag(D_E, D_I) has trace D_E - 2.5 D_I and determinant 0.5 D_E D_I > 0; the cos (and sin) block
M0 diag(eps_E D_E, eps_I D_I) / 2 has trace (0.5 D_E - 2 D_I)/2 and determinant 0.05 D_E D_I > 0.
The population mean slopes averaged over theta are D = (0.2603, 0.3087) (D_E ranges over
[0.183, 0.336], D_I over [0.265, 0.340]); the blocks then have the real eigenvalues -0.0969, -0.4146
(constant mode) and -0.0178, -0.2258 (cos and sin modes).  With the theta-dependent D, the full 6x6
matrix of W D on Range(W) has eigenvalues -0.4134, -0.2289, -0.2223, -0.1001, -0.0177, -0.0164: all
in the left half-plane.
"""
import sympy as sp

from derive import Model, Phi, Population, Ring

x = sp.Symbol("x")
theta, phi = sp.symbols("theta phi")
J_EE, J_EI, J_IE, J_II = sp.symbols("J_EE J_EI J_IE J_II")
eps_E, eps_I, H_E, H_I, delta, c, s = sp.symbols("eps_E eps_I H_E H_I delta c s")

drift = -x - c * x**3
noise = s * sp.sqrt(1 + x**2)

model = Model(
    name="ring_nonlinear",
    state=[x],
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
    parameters={J_EE: 1.0, J_EI: 2.0, J_IE: 1.5, J_II: 2.5, eps_E: 0.5, eps_I: 0.8,
                H_E: 0.45, H_I: 0.5, delta: 0.15, c: 0.5, s: 1.0},
)
