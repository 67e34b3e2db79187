"""iCT's changes to CT, one switch at a time (Song & Dhariwal 2023, Sections 3.1–3.5; notebook 03).

:class:`cmtutor.methods.ct.ConsistencyTraining` implements CT and iCT as one method whose
hyperparameters hold five switches. This module names them and builds the variants of an ablation:

* :func:`cumulative_variants`: CT, then CT with the first switch flipped to iCT, then the first two, …,
  ending at iCT itself (a path from one method to the other);
* :func:`single_switch_variants`: CT with exactly one switch flipped, for each switch.

Each variant is a ``(name, hp)`` pair; ``hp`` goes to ``default_config("ict", ..., hp=hp)``.
"""

from __future__ import annotations

from typing import Any

from cmtutor.methods.ct import CT_PRESET, ICT_PRESET

#: The five switches, in the order the iCT paper introduces them, with the hyperparameters each one sets.
#: The curriculum carries its own s0/s1 (CT: 2 → 150, iCT: 10 → 1280).
SWITCHES: dict[str, tuple[str, ...]] = {
    "weighting": ("weighting",),     # Section 3.1: λ(σ_i) = 1/(σ_{i+1} − σ_i)
    "target": ("target",),           # Section 3.2: θ⁻ = sg(θ), no EMA target network
    "distance": ("distance",),       # Section 3.3: pseudo-Huber instead of L2 (LPIPS on images)
    "curriculum": ("curriculum", "s0", "s1"),  # Section 3.4: N doubles every K' steps, up to s1 + 1 = 1281
    "pairs": ("pairs",),             # Section 3.5: discrete lognormal over adjacent pairs
}


def _check_order(order: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [s for s in order if s not in SWITCHES]
    if unknown or len(set(order)) != len(order):
        raise ValueError(f"order must list distinct switches from {', '.join(SWITCHES)}; got {list(order)}")
    return tuple(order)


def flip(hp: dict[str, Any], switch: str) -> dict[str, Any]:
    """A copy of ``hp`` with one switch set to its iCT value."""
    out = dict(hp)
    for key in SWITCHES[switch]:
        out[key] = ICT_PRESET[key]
    return out


def cumulative_variants(order: tuple[str, ...] | list[str] = tuple(SWITCHES)) -> list[tuple[str, dict[str, Any]]]:
    """[("CT", CT), ("+a", CT+a), ("+b", CT+a+b), …]: flipping the switches of ``order`` one after another.

    With all five switches the last variant is exactly iCT's preset.
    """
    hp = dict(CT_PRESET)
    out = [("CT", dict(hp))]
    for switch in _check_order(order):
        hp = flip(hp, switch)
        out.append((f"+{switch}", dict(hp)))
    return out


def single_switch_variants(order: tuple[str, ...] | list[str] = tuple(SWITCHES)) -> list[tuple[str, dict[str, Any]]]:
    """[("CT", CT), ("CT+a", …), ("CT+b", …), …, ("iCT", iCT)]: one switch flipped at a time, and both ends."""
    out = [("CT", dict(CT_PRESET))]
    out += [(f"CT+{s}", flip(CT_PRESET, s)) for s in _check_order(order)]
    return out + [("iCT", dict(ICT_PRESET))]
