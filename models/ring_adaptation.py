"""ring_adaptation: E and I on the ring, each neuron a membrane variable x with an adaptation current a.

PLACEHOLDER
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
