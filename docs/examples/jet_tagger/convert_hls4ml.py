"""Convert the trained Keras model with hls4ml (Vivado backend, io_parallel) and compile the
bit-accurate C++ emulation with g++.

    python convert_hls4ml.py --model out/model.keras --out hls4ml_prj
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--part", default="xcvu13p-flga2577-2-e")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import hls4ml
    import keras

    model = keras.models.load_model(args.model)
    # one precision for the whole model: with granularity="name" every layer gets its own
    # 'auto' types, and overriding only Model.Precision afterwards left them inconsistent
    # (the emulation then output a constant softmax)
    config = hls4ml.utils.config_from_keras_model(
        model, granularity="model", backend="Vivado", default_precision="ap_fixed<16,6>"
    )
    hls_model = hls4ml.converters.convert_from_keras_model(
        model,
        hls_config=config,
        output_dir=args.out,
        backend="Vivado",
        io_type="io_parallel",
        part=args.part,
        clock_period=5,
    )
    hls_model.compile()
    print(f"wrote and compiled {args.out}")


if __name__ == "__main__":
    main()
