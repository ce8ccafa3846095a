"""The publish backends behind :class:`hepbundle.repository.Publisher` (one module each)."""
