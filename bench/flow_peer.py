"""Benchmark: STSTNet's training per fold, merflow's loop against the PyTorch script its authors ship.

    .venv/bin/python bench/flow_peer.py --impl merflow [--epochs 50] [--threads 1]
    .venv/bin/python bench/flow_peer.py --impl peer --peer-main PATH/TO/christy1206/STSTNet/main.py

Both train STSTNet on the same random CASME II-sized fold (205 training clips, 51 test clips, 3 x 28 x 28,
3 classes) with Adam at lr 5e-5 and batch 256 for --epochs epochs, on --threads torch threads:

- merflow: `pipeline.baselines.flownets.build_network` and `fit_network` (shuffled batches), then one
  prediction of the test clips, as the fold stage does;
- peer: the `STSTNet` class read at run time from the authors' `main.py` (christy1206/STSTNet, not
  copied into merflow), trained as that script trains it: a DataLoader of the training clips, and after
  every epoch a pass over the test clips (the script scores the test fold every epoch).

The two networks are the same (1,683 parameters each, printed); time each command as a whole process,
side by side, several runs.
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

N_TRAIN, N_TEST, SIZE, CLASSES = 205, 51, 28, 3


def fold_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.uniform(0, 255, (N_TRAIN + N_TEST, 3, SIZE, SIZE)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, CLASSES, N_TRAIN + N_TEST))
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def peer_network(main_py: Path) -> nn.Module:
    """The `STSTNet` class of the authors' script, compiled on its own (the script's other imports,
    torchsummary among them, are not needed to build it)."""
    tree = ast.parse(main_py.read_text())
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "STSTNet"]
    if not classes:
        raise SystemExit(f"{main_py}: no class STSTNet")
    namespace: dict = {"nn": nn, "torch": torch}
    exec(compile(ast.Module(body=classes, type_ignores=[]), str(main_py), "exec"), namespace)
    return namespace["STSTNet"](in_channels=3, out_channels=CLASSES)


def train_peer(model: nn.Module, data, epochs: int) -> None:
    from torch.utils.data import DataLoader, TensorDataset
    x_train, y_train, x_test, y_test = data
    train_dl = DataLoader(TensorDataset(x_train, y_train), batch_size=256)
    test_dl = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.00005)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for x, y in train_dl:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        for x, y in test_dl:
            loss_fn(model(x), y).item()


def train_merflow(data, epochs: int) -> nn.Module:
    from pipeline.baselines.flownets import build_network, fit_network  # imported before the clock starts
    x_train, y_train, x_test, _ = data
    torch.manual_seed(0)
    model = build_network("ststnet", CLASSES, SIZE, dropout=0.5)
    fit_network(model, x_train, y_train, epochs=epochs, lr=0.00005, batch_size=256, seed=0)
    model.eval()
    with torch.inference_mode():
        model(x_test).softmax(dim=1)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("merflow", "peer"), required=True)
    parser.add_argument("--peer-main", type=Path, help="the authors' main.py (christy1206/STSTNet)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = fold_data()
    if args.impl == "merflow":
        import pipeline.baselines.flownets  # noqa: F401  (its import is not training time)
    started = time.perf_counter()
    if args.impl == "peer":
        if args.peer_main is None:
            raise SystemExit("--impl peer needs --peer-main")
        model = peer_network(args.peer_main)
        train_peer(model, data, args.epochs)
    else:
        model = train_merflow(data, args.epochs)
    seconds = time.perf_counter() - started
    print(f"{args.impl}: {sum(p.numel() for p in model.parameters())} parameters, {args.epochs} epochs in "
          f"{seconds:.2f} s ({1000 * seconds / args.epochs:.1f} ms per epoch)")


if __name__ == "__main__":
    main()
