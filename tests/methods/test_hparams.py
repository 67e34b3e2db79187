"""Each method's hyperparameters are a typed dataclass: defaults round-trip, bad keys and values are one clear error."""

from __future__ import annotations

import dataclasses

import pytest

from cmtutor.config import default_config
from cmtutor.core.noise import VECTOR_NOISE
from cmtutor.errors import UserError
from cmtutor.methods import METHODS, get_method
from cmtutor.methods.ct import CT_PRESET, ICT_PRESET, CTHparams
from cmtutor.methods.hparams import HparamError


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("data", ["moons", "digits"])
def test_the_defaults_are_the_dataclass_and_round_trip(name: str, data: str) -> None:
    cls = get_method(name)
    hp = default_config(name, data).hp
    typed = cls.hparams_type.parse(hp, name)
    assert typed.to_dict() == hp and set(hp) == {f.name for f in dataclasses.fields(cls.hparams_type)}
    method = cls(hp, VECTOR_NOISE, 100, 2)
    assert method.hp == typed  # the method reads its settings as attributes, e.g. method.hp.distance


def test_ct_and_ict_are_the_papers_presets_of_one_dataclass() -> None:
    assert {k: v for k, v in CTHparams.parse(ICT_PRESET).to_dict().items() if k in ICT_PRESET} == ICT_PRESET
    assert default_config("ct", "moons").hp == {**CTHparams().to_dict(), **CT_PRESET}


def test_unknown_keys_and_bad_values_are_one_clear_error() -> None:
    with pytest.raises(UserError, match="unknown hyperparameter.*num_scale.*known: distance, num_scales"):
        default_config("cd", "moons", hp={"num_scale": 12})
    with pytest.raises(HparamError, match="--hp s1 must be a whole number; got 'many'"):
        default_config("ict", "moons", hp={"s1": "many"})
    with pytest.raises(HparamError, match="--hp distance must be one of 'l2', 'pseudo_huber'; got 'l1'"):
        default_config("ict", "moons", hp={"distance": "l1"})
    with pytest.raises(HparamError, match="must be true or false"):
        default_config("cd", "moons", hp={"init_from_teacher": 1})
    assert isinstance(HparamError("x"), ValueError)  # a method built in code raises a ValueError too


def test_values_are_coerced_to_their_field_type() -> None:
    hp = CTHparams.parse({"s1": 200.0, "mu0": 1, "p_std": 2})
    assert hp.s1 == 200 and isinstance(hp.s1, int) and isinstance(hp.mu0, float) and isinstance(hp.p_std, float)
    with pytest.raises(HparamError):
        CTHparams.parse({"s1": 200.5})
    gc = get_method("gc").hparams_type
    assert gc.parse({"mu_end": None}).mu_end is None and gc.parse({"mu_end": 0}).mu_end == 0.0
    with pytest.raises(HparamError, match="mu_end"):
        gc.parse({"mu_end": "soon"})


def test_a_stored_config_without_a_newer_key_takes_its_default() -> None:
    """A checkpoint written before an option existed (GC's gc_start) still loads."""
    hp = default_config("gc", "moons").hp
    del hp["gc_start"]
    assert get_method("gc")(hp, VECTOR_NOISE, 100, 2).gc_start == 0
