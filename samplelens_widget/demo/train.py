"""Retrain the demo model and rewrite the shipped weights file.

    python -m samplelens_widget.demo.train [--epochs 16] [--seed 0] [--out PATH]

Trains `DemoNet` on the default train split of `load_demo` (4000 samples) on the CPU with AdamW
(one-cycle schedule) and random horizontal/vertical flips (every class is symmetric
under both), prints one line per epoch, and saves a float32 state_dict with `torch.save`.
Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from samplelens_widget.demo import WEIGHTS_PATH, split_seeds
from samplelens_widget.demo.data import LABEL_NAMES, ShapesDataset
from samplelens_widget.demo.model import DemoNet


def _flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    h = torch.rand(n, generator=gen) < 0.5
    v = torch.rand(n, generator=gen) < 0.5
    x = torch.where(h[:, None, None, None], x.flip(3), x)
    return torch.where(v[:, None, None, None], x.flip(2), x)


@torch.no_grad()
def accuracy(model: torch.nn.Module, ds: ShapesDataset, batch_size: int = 500) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(ds), batch_size):
        x = ds.images[i : i + batch_size].contiguous(memory_format=torch.channels_last)
        pred = model(x).argmax(1).numpy()
        correct += int((pred == ds.labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(ds)


def train(
    epochs: int = 16,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    n_train: int = 4000,
    n_val: int = 1000,
    out: Path = WEIGHTS_PATH,
    threads: int = 2,
) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_seed, val_seed = split_seeds(seed)
    t0 = time.perf_counter()
    train_ds = ShapesDataset.generate(n_train, train_seed)
    val_ds = ShapesDataset.generate(n_val, val_seed)
    print(f"data: {n_train} train, {n_val} val samples in {time.perf_counter() - t0:.1f} s")

    model = DemoNet(num_classes=len(LABEL_NAMES)).to(memory_format=torch.channels_last)
    print(f"DemoNet: {sum(p.numel() for p in model.parameters())} parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((n_train + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, pct_start=0.1, div_factor=10.0
    )
    labels = torch.from_numpy(train_ds.labels)

    print(f"{'epoch':>5} {'loss':>8} {'train acc':>9} {'val acc':>8} {'seconds':>8}")
    t_start = time.perf_counter()
    val_acc = 0.0
    for epoch in range(1, epochs + 1):
        t_ep = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(0, n_train, batch_size):
            idx = perm[i : i + batch_size]
            x = _flip(train_ds.images[idx], gen).contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        val_acc = accuracy(model, val_ds)
        print(
            f"{epoch:>5} {total_loss / n_train:>8.4f} {correct / n_train:>9.4f} {val_acc:>8.4f} "
            f"{time.perf_counter() - t_ep:>8.1f}",
            flush=True,
        )
    train_time = time.perf_counter() - t_start
    train_acc = accuracy(model, train_ds)

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    out = Path(out)
    torch.save(state, out)
    size = out.stat().st_size
    print(
        f"done: {epochs} epochs in {train_time:.0f} s; train acc (eval mode) {train_acc:.4f}, "
        f"val acc {val_acc:.4f}; wrote {out} ({size / 1024:.0f} KiB)"
    )
    return {"train_acc": train_acc, "val_acc": val_acc, "seconds": train_time, "bytes": size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args(argv)
    train(
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        out=args.out,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
