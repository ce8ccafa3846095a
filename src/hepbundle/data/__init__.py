"""Data tools: ROOT→NPZ with provenance, reference profiles of training inputs, drift checks.

``root2npz``        ROOT TTrees → one NPZ in bounded memory, plus ``<out>.provenance.json``
``npz_provenance``  that record's schema, reading and checking (embedded by data references)
``profile``         per-feature quantile histograms and moments of an NPZ, in bounded memory
``drift``           PSI / KS / mean and width shifts of new data against a bundle's profile

Its place in the layer order (above ``fpga``, below ``builder``, which captures a spec's
``profile:`` section through it) is written once, in docs/design.md.
"""

from __future__ import annotations

# submodules are imported by name (``from hepbundle.data.root2npz import root2npz``); nothing is
# re-exported here, so a function never shadows the module of the same name
