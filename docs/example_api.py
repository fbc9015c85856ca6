"""The Python API end to end on a model built in memory (docs/api.md).  Run: python3 docs/example_api.py
(the test suite runs it: tests/test_api.py).  About 20 s on 2 cores."""
import json

import numpy as np
import sympy as sp

import balkin
from balkin import Model, Phi, Point, Population

# 1. a model in memory: an E-I network without space, f = -x, sigma = 1, g = Phi
x = sp.Symbol("x")
hE, hI = sp.symbols("h_E h_I")
model = Model(name="my_ei", state=[x], space=Point(),
              populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=hE),
                           Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=hI)],
              kernel={("E", "E"): 1.0, ("E", "I"): -2.0, ("I", "E"): 1.0, ("I", "I"): -1.8},
              parameters={hE: 0.1, hI: 0.06})

# 2. the derivation, and the generated code (in memory; nothing is written)
d = balkin.derive(model)
print(balkin.derivation_text(d).splitlines()[0])
cm = balkin.compile(model)
print("populations:", cm.populations)

# 3. the limit equations
st = balkin.stationary(cm)                                   # balanced limit: gbar = (0.3, 0.2)
print("balanced gbar:", {a: st.population(a)["gbar"] for a in cm.populations})
st_n = balkin.stationary(cm, n=1600)                         # finite-n McKean-Vlasov state
print("finite-n (n = 1600) means:", {a: st_n.population(a)["mean"] for a in cm.populations})
kin = balkin.kinetic(cm, T=4.0, dt=0.05)                     # kinetic equation, from x ~ N(0, 1)
fld = balkin.field(cm, T=4.0)                                # neural field (linear, additive)
spec = balkin.spectrum(cm)
print("kinetic mean at T:", kin.mean[-1, :, 0], " field mean at T:", fld.mean[-1, :, 0])

# 4. the network itself, and the check of the limit against it
sim = balkin.simulate(cm, n=1600, T=4.0, dt=0.01, seed=1)
print("particles, time-averaged gbar over [2, 4]:", sim.population("E", t0=2.0)["gbar"])
rep = balkin.verify(cm, sizes=(100, 400), seeds=2, T=3.0, t0=1.0, nbins=1)
print("verify:", "PASS" if rep.passed else "FAIL")

# 5. every result is a dict / JSON keyed by population name
rec = json.loads(st.to_json())
assert set(cm.populations) <= set(rec) and np.allclose(rec["E"]["gbar"], st.gbar[0])
