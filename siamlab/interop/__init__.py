"""siamlab with the rest of the ecosystem: diagnose foreign models (:mod:`.diagnose`), monitor foreign
training loops (:mod:`.monitor`, :mod:`.lightning`), export trained backbones (:mod:`.export`).

Layer: above ``engine`` and ``report`` (it uses both), below ``cli``."""
