"""The CT → iCT ablation variants flip exactly the switches they name."""

from __future__ import annotations

import pytest

from cmtutor.course.ablation import SWITCHES, cumulative_variants, flip, single_switch_variants
from cmtutor.methods.ct import CT_PRESET, ICT_PRESET


def _changed(a: dict, b: dict) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_switches_cover_every_difference_between_ct_and_ict() -> None:
    assert {k for keys in SWITCHES.values() for k in keys} == _changed(CT_PRESET, ICT_PRESET)


def test_cumulative_path_goes_from_ct_to_ict_one_switch_per_step() -> None:
    variants = cumulative_variants()
    assert variants[0] == ("CT", CT_PRESET)
    assert variants[-1][1] == ICT_PRESET
    for (_, prev), (name, hp), switch in zip(variants, variants[1:], SWITCHES):
        assert name == f"+{switch}"
        assert _changed(prev, hp) == set(SWITCHES[switch])


def test_single_switch_variants_differ_from_ct_in_one_switch() -> None:
    variants = dict(single_switch_variants(["pairs", "target"]))
    assert list(variants) == ["CT", "CT+pairs", "CT+target", "iCT"]
    assert _changed(CT_PRESET, variants["CT+pairs"]) == {"pairs"}
    assert _changed(CT_PRESET, variants["CT+target"]) == {"target"}
    assert variants["iCT"] == ICT_PRESET
    assert flip(CT_PRESET, "curriculum")["s1"] == 1280 and CT_PRESET["s1"] == 150  # the input is not modified
    with pytest.raises(ValueError):
        cumulative_variants(["pairs", "pairs"])
    with pytest.raises(ValueError):
        cumulative_variants(["ema"])
