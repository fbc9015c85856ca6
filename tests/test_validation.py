"""Model validation (derive/validate.py): every error is a ModelError whose message names the model,
the population or kernel pair, and the offending expression."""
import math
import re

import pytest
import sympy as sp

from derive import Model, ModelError, Phi, Point, Population, Ring, t

x, y, k, q = sp.symbols("x y k q")
th, ph = sp.symbols("theta phi")


def pop(name="E", **kw):
    d = dict(drift=-x, diffusion=1, gain=Phi(x))
    d.update(kw)
    return Population(name, **d)


def build(**kw):
    d = dict(name="netA", state=[x], space=Point(), populations=[pop()])
    d.update(kw)
    return Model(**d)


def raises_naming(*parts):
    """pytest.raises(ModelError) whose message contains ``parts`` in this order (literally)."""
    return pytest.raises(ModelError, match=".*".join(re.escape(p) for p in parts))


def test_valid_model_builds():
    model = build(parameters={k: 2}, populations=[pop(drift=-k * x)])
    assert model.names == ["E"]
    assert model.parameter_values == {"k": 2.0}


def test_undeclared_symbol_in_drift():
    with raises_naming("model 'netA'", "population E", "drift -k*x", "undeclared", "k"):
        build(populations=[pop(drift=-k * x)])


def test_undeclared_symbol_in_kernel():
    with raises_naming("model 'netA'", "kernel pair (E, E)", "kernel q*cos(phi - theta)", "undeclared", "q"):
        build(space=Ring(th, ph), kernel={("E", "E"): q * sp.cos(th - ph)})


def test_undeclared_symbol_in_gain_of_second_population():
    with raises_naming("model 'netA'", "population I", "gain", "undeclared", "q"):
        build(populations=[pop(), pop("I", gain=Phi(q * x))])


def test_drift_of_wrong_length():
    with raises_naming("model 'netA'", "population E", "drift [-x, -x]", "2 component(s)", "state has 1"):
        build(populations=[pop(drift=[-x, -x])])


def test_drift_too_short_for_two_dimensional_state():
    with raises_naming("model 'netA'", "population E", "drift [-x]", "1 component(s)", "state has 2"):
        build(state=[x, y], populations=[pop(drift=[-x], diffusion=1)])


@pytest.mark.parametrize("sigma", [[[1, 0, 0]], [[1, 0], [0]], [[1, 0], [0, 1], [1, 1]]],
                         ids=["one_row", "ragged", "three_rows"])
def test_diffusion_matrix_of_wrong_shape(sigma):
    with raises_naming("model 'netA'", "population E", f"diffusion {sigma}", "m x q matrix", "m = 2"):
        build(state=[x, y], populations=[pop(drift=[-x, -y], diffusion=sigma)])


def test_diffusion_diagonal_of_wrong_length():
    with raises_naming("model 'netA'", "population E", "diffusion [1, 1, 1]", "3 diagonal entries"):
        build(state=[x, y], populations=[pop(drift=[-x, -y], diffusion=[1, 1, 1])])


@pytest.mark.parametrize("sigma, shown", [(sp.I * x, "I*x"), (1 + sp.I, "1 + I"), (sp.sqrt(-2), "sqrt(2)*I")])
def test_diffusion_not_real(sigma, shown):
    with raises_naming("model 'netA'", "population E", f"diffusion {shown}", "not real"):
        build(populations=[pop(diffusion=sigma)])


def test_diffusion_depending_on_time():
    with raises_naming("model 'netA'", "population E", "diffusion t + 1", "depends on time"):
        build(populations=[pop(diffusion=1 + t)])


def test_gain_depending_on_time():
    with raises_naming("model 'netA'", "population E", "gain t*x", "depends on time"):
        build(populations=[pop(gain=x * t)])


def test_time_symbol_by_name_is_the_model_time():
    """A user symbol named t (other assumptions) is the model's time: allowed in drift and drive."""
    tt = sp.Symbol("t", positive=True)
    model = build(populations=[pop(drift=-x + sp.sin(tt), drive=tt)])
    assert model.populations[0].drive == t
    assert model.populations[0].drift == sp.Matrix([-x + sp.sin(t)]).xreplace({x: model.state[0]})


@pytest.mark.parametrize("gain, shown", [(k, "gain k"), (sp.Integer(1), "gain 1"), (Phi(k), "gain")])
def test_gain_not_depending_on_state(gain, shown):
    with raises_naming("model 'netA'", "population E", shown, "does not depend on the state"):
        build(parameters={k: 1.0}, populations=[pop(gain=gain)])


def test_missing_gain():
    with raises_naming("model 'netA'", "population E", "gain is missing"):
        build(populations=[Population("E", drift=-x)])


def test_kernel_depending_on_state():
    with raises_naming("model 'netA'", "kernel pair (E, E)", "kernel 2*x", "depends on the state"):
        build(kernel={("E", "E"): 2 * x})


def test_kernel_depending_on_state_on_ring():
    with raises_naming("model 'netA'", "kernel pair (E, E)", "kernel x*cos(phi - theta)", "depends on the state"):
        build(space=Ring(th, ph), kernel={("E", "E"): x * sp.cos(th - ph)})


@pytest.mark.parametrize("what", ["drive", "input"])
def test_drive_or_input_depending_on_state(what):
    with raises_naming("model 'netA'", "population E", f"{what} x**2", "depends on the state"):
        build(populations=[pop(**{what: x ** 2})])


def test_kernel_on_point_depending_on_position():
    with raises_naming("model 'netA'", "kernel pair (E, E)", "kernel cos(theta)", "depends on theta",
                       "Point()"):
        build(kernel={("E", "E"): sp.cos(th)})


@pytest.mark.parametrize("key, unknown", [(("E", "X"), "X"), (("Y", "E"), "Y")])
def test_kernel_names_unknown_population(key, unknown):
    with raises_naming("model 'netA'", f"kernel pair ({key[0]}, {key[1]})", f"unknown population '{unknown}'",
                       "['E']"):
        build(kernel={key: 1})


def test_kernel_key_not_a_pair():
    with raises_naming("model 'netA'", "kernel key 'E'", "pair"):
        build(kernel={"E": 1})


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "abc", 1 + 2j],
                         ids=["inf", "-inf", "nan", "text", "complex"])
def test_non_finite_parameter_value(value):
    with raises_naming("model 'netA'", "parameter k", f"value {value!r}", "not a finite real number"):
        build(parameters={k: value}, populations=[pop(drift=-k * x)])


@pytest.mark.parametrize("name", ["ring-ei", "2ring", "class", ""])
def test_model_name_not_an_identifier(name):
    with raises_naming(f"model name {name!r}", "not a valid Python identifier"):
        build(name=name)


def test_population_name_not_an_identifier_and_duplicates():
    with raises_naming("model 'netA'", "population 'E-1'", "not a valid Python identifier"):
        build(populations=[pop("E-1")])
    with raises_naming("model 'netA'", "population E", "used twice"):
        build(populations=[pop(), pop()])


def test_fraction_must_be_positive():
    with raises_naming("model 'netA'", "population E", "fraction -1", "positive"):
        build(populations=[pop(fraction=-1)])


def test_parameter_clashing_with_state():
    with raises_naming("model 'netA'", "parameter x", "clashes"):
        build(parameters={x: 1.0})


def test_noise_convention():
    with raises_naming("model 'netA'", "noise", "'levy'"):
        build(noise="levy")


def test_repr_shows_missing_pairs_as_zero_coupling():
    model = build(populations=[pop(), pop("I")], kernel={("E", "I"): -2})
    text = repr(model)
    assert "kernel w[E,I] = -2" in text
    for a, b in [("E", "E"), ("I", "E"), ("I", "I")]:
        assert f"kernel w[{a},{b}] = 0  (missing pair: zero coupling)" in text
    assert "w[E,I] = -2  (missing" not in text
    assert model.kernel_of("I", "E") == 0 and model.kernel_of("E", "I") == -2


def test_zero_kernel_is_dropped():
    model = build(kernel={("E", "E"): 0})
    assert model.kernel == {}
    assert "kernel w[E,E] = 0  (missing pair: zero coupling)" in repr(model)


def test_normalisation_makes_symbols_real():
    """Symbols with other assumptions are replaced by real symbols of the same name everywhere."""
    xp, kp = sp.Symbol("x", positive=True), sp.Symbol("k", positive=True)
    model = build(state=[xp], parameters={kp: 1.0}, populations=[pop(drift=-kp * xp, gain=Phi(xp))])
    xr, kr = sp.Symbol("x", real=True), sp.Symbol("k", real=True)
    assert model.state == [xr]
    assert list(model.parameters) == [kr]
    assert model.populations[0].drift == sp.Matrix([-kr * xr])
    assert model.populations[0].diffusion == sp.Matrix([[1]])


def test_position_dependence_on_a_point_space_is_named():
    """A drift that uses an angle on a Point() space: the message says the space has no position."""
    import sympy as sp
    from derive import Model, ModelError, Phi, Point, Population
    x, theta = sp.symbols("x theta")
    with pytest.raises(ModelError, match=r"population E.*theta.*Point\(\), so nothing may depend on a position"):
        Model(name="pt", state=[x], space=Point(),
              populations=[Population("E", drift=-x + sp.cos(theta), gain=Phi(x))], kernel={})
