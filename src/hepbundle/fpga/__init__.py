"""FPGA firmware in bundles: capture toolchain projects, compare firmware with the model.

Public modules, one step each:

* :mod:`~hepbundle.fpga.capture` — read an hls4ml / FINN / Vitis-AI project (over the private
  readers ``_hls4ml``, ``_finn``, ``_vitis_ai``) into the manifest ``fpga`` section and the files
  to pack; :mod:`~hepbundle.fpga.bitstreams` describes the loadable images;
* :mod:`~hepbundle.fpga.emulation` — compile a packed hls4ml project with g++ into its
  bit-accurate C++ emulation, outside the (read-only) bundle;
* :mod:`~hepbundle.fpga.compare` — float model vs emulation vs hardware outputs, as a CI gate;
* :mod:`~hepbundle.fpga.reloadable` — which weights can change without a new bitstream.

Example::

    from hepbundle.fpga.capture import capture
    cap = capture("hls4ml_prj", "hls4ml")      # cap.meta → manifest 'fpga', cap.files → pack
"""
