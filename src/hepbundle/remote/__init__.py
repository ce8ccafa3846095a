"""Clients of the grid data services a data reference names: XRootD (``root://`` files: size
and server-side adler32 without reading the data) and Rucio (DIDs: metadata, contents,
replicas). Each client is imported only when a reference needs it, with bounded timeouts, and
every failure is one line (:class:`~hepbundle.errors.DataError`)."""
