"""Faults and bad input: a killed or crashed trainer loses nothing and leaves nothing torn; a second
trainer on one run dir is refused; checkpoints load no code; divergence names the checkpoint on disk."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lvae_lib.config import TrainConfig, preset
from lvae_lib.train import CheckpointError, DivergenceError, load_checkpoint, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import SMALL, synthetic  # noqa: E402

CFG = preset("LVAE+BN+WU", n_layers=2, **SMALL)[0]
ROOT = Path(__file__).resolve().parents[1]


def script(body: str) -> list[str]:
    """A python -c command that has this test module's synthetic data and configs at hand."""
    head = f"""
        import os, signal, sys, time, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import SMALL, synthetic
        from lvae_lib.config import TrainConfig, preset
        from lvae_lib import train as T
        CFG = preset("LVAE+BN+WU", n_layers=2, **SMALL)[0]
    """
    return [sys.executable, "-c", textwrap.dedent(head) + textwrap.dedent(body)]


def test_a_kill_while_the_first_finetuning_checkpoint_is_written_leaves_nothing_torn(tmp_path):
    base_tc = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1)
    train(CFG, base_tc, synthetic(), tmp_path / "base", progress=False)
    ft = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1, mc_samples=2, lr=5e-4)
    # the first checkpoint of the fine-tuning run: half written, then SIGKILL (as a crash or OOM kill would)
    killed = subprocess.run(script(f"""
        real = torch.save
        def torn(obj, f):
            import io
            buf = io.BytesIO(); real(obj, buf); f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = torn
        ft = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1, mc_samples=2, lr=5e-4)
        T.train(CFG, ft, synthetic(), {str(tmp_path / 'ft')!r}, progress=False,
                init_from={str(tmp_path / 'base' / 'checkpoint.pt')!r})
    """), cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "ft" / "checkpoint.pt").exists()  # the torn bytes never took the checkpoint's name
    model, st = train(CFG, ft, synthetic(), tmp_path / "ft", progress=False, init_from=tmp_path / "base" / "checkpoint.pt")
    clean, st_clean = train(CFG, ft, synthetic(), tmp_path / "ft-clean", progress=False,
                            init_from=tmp_path / "base" / "checkpoint.pt")
    torch.testing.assert_close(model.state_dict(), clean.state_dict(), rtol=0, atol=0)


def test_a_second_trainer_on_one_run_dir_is_refused_until_the_first_dies(tmp_path):
    holder = subprocess.Popen(script(f"""
        tc = TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1)
        T.train(CFG, tc, synthetic(), {str(tmp_path)!r}, progress=False)
    """), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "checkpoint.pt").exists():  # it holds the dir and has written a checkpoint
            assert holder.poll() is None and time.time() < deadline, holder.stderr.read().decode()
            time.sleep(0.2)
        tc = TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1)
        with pytest.raises(CheckpointError, match=rf"{tmp_path} is in use by another trainer \(pid {holder.pid}\)"):
            train(CFG, tc, synthetic(), tmp_path, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel drops a dead process's lock: the run resumes from the checkpoint the killed trainer left
    epoch = load_checkpoint(tmp_path / "checkpoint.pt")["epoch"]
    _, st = train(CFG, TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1), synthetic(), tmp_path,
                  progress=False, stop_after=epoch + 1)
    assert st["epoch"] == epoch + 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_a_checkpoint_that_would_run_code_is_refused_naming_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    bad = tmp_path / "checkpoint.pt"
    torch.save({"model": Payload()}, bad)
    with pytest.raises(CheckpointError, match=rf"cannot read the checkpoint {bad}"):
        train(CFG, TrainConfig(epochs=1, batch_size=64), synthetic(), tmp_path, progress=False)
    assert not (tmp_path / "ran").exists()
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02 torn")
    with pytest.raises(CheckpointError, match=r"move it away"):
        train(CFG, TrainConfig(epochs=1, batch_size=64), synthetic(), tmp_path, progress=False)


def test_a_huge_learning_rate_stops_with_an_exploding_loss_not_done(tmp_path):
    tc = TrainConfig(epochs=30, batch_size=64, lr=1e4)  # huge but finite: once ended "done" at ELBO -1.9e27
    with pytest.raises(DivergenceError, match=r"(exploding|non-finite) loss.* at epoch \d+ .*(no checkpoint|kept at)"):
        train(CFG, tc, synthetic(), tmp_path, progress=False)


def test_divergence_names_the_checkpoint_that_is_on_disk(tmp_path, monkeypatch):
    from lvae_lib import train as T

    calls, real = [0], T.train_step

    def step(*a, **k):  # from the 7th epoch on (6 batches an epoch), the loss explodes
        calls[0] += 1
        loss, out = real(*a, **k)
        return (loss * 1e12 if calls[0] > 36 else loss), out

    monkeypatch.setattr(T, "train_step", step)
    tc = TrainConfig(epochs=20, batch_size=64, checkpoint_every=4)
    with pytest.raises(DivergenceError, match=rf"exploding loss .* at epoch 7 .*of epoch 4, is kept at {tmp_path}"):
        train(CFG, tc, synthetic(), tmp_path, progress=False)  # epochs 5-6 were never written
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 4
