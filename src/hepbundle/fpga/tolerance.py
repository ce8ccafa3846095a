"""When a firmware comparison fails: the thresholds of ``hepbundle fpga compare``.

Kept apart from :mod:`~hepbundle.fpga.compare` (which needs numpy) so the CLI can show the
defaults in ``--help`` without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_RELATIVE_DIFF", "DEFAULT_MIN_ARGMAX_AGREEMENT", "Tolerance"]

#: default gate on float vs emulation: the emulation keeps at least this fraction of decisions
DEFAULT_MIN_ARGMAX_AGREEMENT = 0.9
#: default gate on float vs emulation: max |emulation - float| at most this fraction of the
#: float output's range (max - min over every sample and value). A constant output is always
#: at least half the range away somewhere, so it fails whatever the constant.
DEFAULT_MAX_RELATIVE_DIFF = 0.2


@dataclass(frozen=True)
class Tolerance:
    """When a comparison fails.

    Hardware: at least ``min_agreement`` of the values within ``hardware_atol`` of the emulation
    (defaults: every value bit-exact). Float vs emulation (defaults fail a broken firmware, e.g.
    one that outputs a constant): argmax (decision) agreement at least ``min_argmax_agreement``
    and max |diff| at most ``max_relative_diff`` × the float output's range; optionally also an
    absolute bound ``float_atol``. ``None`` switches a bound off.
    """

    hardware_atol: float = 0.0
    min_agreement: float = 1.0
    float_atol: float | None = None
    min_argmax_agreement: float | None = DEFAULT_MIN_ARGMAX_AGREEMENT
    max_relative_diff: float | None = DEFAULT_MAX_RELATIVE_DIFF
