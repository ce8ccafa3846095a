"""Train the toy 5-class jet tagger (Keras, 16→64→32→5) on an NPZ made by `hepbundle data root2npz`.

    python train.py --data jets.npz --out out/ [--epochs 8] [--seed 42]

Writes out/model.keras and out/training-record.json (hepbundle's training record format:
hyperparameters, metrics (accuracy and macro AUC on a held-out test split), seed, start/end,
hardware), which `hepbundle build` reads through `training: {record: ...}`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

import numpy as np

FEATURES = [f"j_f{i:02d}" for i in range(16)]


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as d:
        x = np.stack([d[f] for f in FEATURES], axis=1).astype(np.float32)
        return x, d["label"].astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from sklearn.metrics import roc_auc_score

    keras.utils.set_random_seed(args.seed)
    start = dt.datetime.now(dt.UTC)
    x, y = load(args.data)
    n_test = len(x) // 5
    x_train, y_train, x_test, y_test = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    model = keras.Sequential(
        [
            keras.Input((16,), name="features"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(32, activation="relu", name="fc2"),
            keras.layers.Dense(5, activation="softmax", name="output"),
        ]
    )
    hp = {"epochs": args.epochs, "batch_size": 256, "learning_rate": 3e-3, "optimizer": "adam"}
    model.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=hp["epochs"], batch_size=hp["batch_size"], verbose=0)
    probs = model.predict(x_test, verbose=0)
    acc = float((probs.argmax(axis=1) == y_test).mean())
    auc = float(roc_auc_score(y_test, probs, multi_class="ovr"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    record = {
        "mediaType": "application/vnd.hepbundle.training-record.v1+json",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hyperparameters": hp,
        "metrics": [
            {"name": "accuracy", "value": round(acc, 4), "split": "test"},
            {"name": "auc", "value": round(auc, 4), "split": "test"},
        ],
        "seeds": {"keras": args.seed},
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count()},
    }
    (out / "training-record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"accuracy={acc:.4f} auc={auc:.4f}")


if __name__ == "__main__":
    main()
