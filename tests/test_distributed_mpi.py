"""minidl.distributed across processes: each test starts ``mpiexec -n 2 python`` on this very
file (its ``__main__`` part holds the workers) and checks what the ranks wrote.

The promise under test: 2 ranks with half of each batch take the steps of 1 process with the
whole batch (max |Δw| ≤ 1e-5 in float32, dropout 0), a run checkpointed by 1 rank continues on
2 as it would have on 1, bucketed and per-parameter all-reduce agree, the sampler's shards
partition every epoch, and a failing rank ends the job in bounded time with a clear message.
Skipped, with the reason, where mpi4py or mpiexec is missing (``pip install "minidl[dist]"``).
Every job runs with ``MINIDL_DIST_TIMEOUT`` set, so a bug fails it instead of hanging it.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minidl as md

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def _mpiexec():
    """The mpiexec beside this Python (the mpich wheel puts it there), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _skip_reason():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install "minidl[dist]")'
    if _mpiexec() is None:
        return 'no mpiexec (pip install "minidl[dist]" brings the mpich wheel)'
    return None


needs_mpi = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def run_ranks(*args, ranks=2, timeout_s=120, dist_timeout="60", env=None):
    """``mpiexec -n ranks python this_file args...``; returns (CompletedProcess, seconds)."""
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", MINIDL_DIST_TIMEOUT=dist_timeout,
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    environment.update(env or {})
    started = time.monotonic()
    result = subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, __file__,
                             *map(str, args)], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=timeout_s)
    return result, time.monotonic() - started


def ran_ok(result):
    assert result.returncode == 0, (f"mpiexec exited with {result.returncode}\n--- stdout\n"
                                    f"{result.stdout[-3000:]}\n--- stderr\n"
                                    f"{result.stderr[-3000:]}")


def max_difference(a, b):
    assert list(a) == list(b)
    return max(float(np.abs(np.asarray(a[k], np.float64) - b[k]).max()) for k in a)


# ============================================================================= workers
# What each rank runs (``python tests/test_distributed_mpi.py WORKER OUT``). Shared with the
# one-process references below, so both sides run the very same code.
def fit_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(41, 5)).astype("float32")
    y = (x[:, :2].sum(axis=1, keepdims=True) > 0).astype("float32")
    return x, y


def fit_model(seed):
    from minidl import nn
    md.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())


def run_fit(seed=1, callbacks=()):
    """41 samples, validation_split 0.2 → 33 training samples in batches of 8: the last
    global batch has 1 sample, so rank 1's part of it is empty."""
    from minidl import functions as F
    from minidl import optim
    from minidl.training import fit
    x, y = fit_problem()
    model = fit_model(seed)
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    md.manual_seed(123)   # the shuffling
    accuracy = {"acc": lambda t, p: ((p > 0.5) == (t > 0.5)).astype("float32")}
    history = fit(model, F.binary_cross_entropy, optimizer, x, y, batch_size=8, epochs=3,
                  verbose=0, validation_split=0.2, metrics=accuracy, callbacks=list(callbacks))
    return model, history.history


def pretrain_config(steps=6):
    from test_pretrain import tiny_config
    return tiny_config(steps=steps, batch=5, accumulate=2, checkpoint_every=3,
                       model=dict(context_length=6, d_model=8, n_layers=1, n_heads=2,
                                  dropout=0.0))


def worker_collectives(out):
    """Collectives, buckets, the wrapper and the sampler; every rank writes what it saw."""
    from minidl import distributed, nn
    from minidl.distributed import DistributedDataParallel, DistributedError, shard_bounds
    comm = distributed.init()
    r = comm.rank
    found = {"world_size": comm.world_size, "engine": comm.engine}

    x = md.tensor([1.0 + r, -2.0 * r, 3.0])
    for op in ("sum", "mean", "max", "min"):
        found[f"reduce_{op}"] = distributed.all_reduce(md.tensor(x.numpy()), op).numpy()
    strided = np.arange(12.0).reshape(3, 4) * (r + 1)
    distributed.all_reduce(strided[:, ::2])                 # a view: changed in place
    found["strided"] = strided
    found["broadcast"] = distributed.broadcast(np.full(3, 10.0 * r), root=1)
    found["object"] = distributed.broadcast_object(
        {"W": np.eye(2) * 7, "name": "r0", "step": 3} if r == 0 else None)

    # gradients: bucketed == per parameter == the mean of the ranks' gradients
    model = fit_model(seed=0)
    rng = np.random.default_rng(100 + r)
    raw = [rng.normal(size=p.shape).astype("float32") for p in model.parameters()]
    results = {}
    for name, cap in (("bucketed", 25.0), ("per_parameter", 0.0)):
        ddp = DistributedDataParallel(model, bucket_cap_mb=cap)
        for p, g in zip(model.parameters(), raw):
            p.grad = md.tensor(g.copy())
        ddp.sync_gradients()
        results[name] = [p.grad.numpy() for p in model.parameters()]
        found[f"messages_{name}"] = len(ddp.buckets())
    found["raw"], found["bucketed"], found["per_parameter"] = raw, results["bucketed"], \
        results["per_parameter"]

    # the gradient of 7 samples split 4 + 3 over the ranks == the gradient of all 7
    from minidl import functions as F
    xs = np.random.default_rng(5).normal(size=(7, 5)).astype("float32")
    ys = np.random.default_rng(6).normal(size=(7, 1)).astype("float32")
    model = fit_model(seed=2)
    ddp = DistributedDataParallel(model)
    start, stop = shard_bounds(7, r, comm.world_size)
    F.mse_loss(ddp(md.tensor(xs[start:stop])), md.tensor(ys[start:stop])).backward()
    ddp.sync_gradients(weight=stop - start)
    found["shard_grads"] = [p.grad.numpy() for p in model.parameters()]
    whole = fit_model(seed=2)
    F.mse_loss(whole(md.tensor(xs)), md.tensor(ys)).backward()
    found["whole_grads"] = [p.grad.numpy() for p in whole.parameters()]

    # a parameter used on one rank only is averaged with a zero; unused on all: stays None
    model = nn.Sequential(nn.Linear(2, 1), nn.Linear(2, 1))
    ddp = DistributedDataParallel(model)
    if r == 0:
        model.parameters()[0].grad = md.tensor(np.ones((2, 1), dtype="float32"))
    ddp.sync_gradients()
    found["half_used"] = model.parameters()[0].grad.numpy()
    found["never_used_is_none"] = model.parameters()[2].grad is None

    # rank 0's weights reach every rank; different models are refused on every rank
    model = fit_model(seed=10 + r)
    found["broadcast_weights"] = DistributedDataParallel(model).state_dict()
    try:
        DistributedDataParallel(nn.Linear(3, 2 + r))
        found["different_models"] = "accepted"
    except DistributedError as error:
        found["different_models"] = str(error)

    # the sampler: this rank's indices of 3 epochs
    sampler = distributed.DistributedSampler(23, batch_size=6, seed=4)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append([int(i) for i in sampler])
    found["sampler"] = json.dumps(epochs)
    md.save(found, os.path.join(out, f"rank{r}.npz"))


def worker_fit(out):
    """fit on 2 ranks; rank 0 writes weights and history, every rank its checkpoint writes."""
    from minidl import distributed
    from minidl.training import ModelCheckpoint

    class Recording(ModelCheckpoint):
        writes = []

        def _write(self, path, epoch):
            self.writes.append(path)

    model, history = run_fit(callbacks=[Recording(os.path.join(out, "never.npz"))])
    rank = distributed.get_rank()
    with open(os.path.join(out, f"writes{rank}.json"), "w") as f:
        json.dump(Recording.writes, f)
    if rank == 0:
        md.save({"weights": model.state_dict(), "history": history},
                os.path.join(out, "fit.npz"))


def worker_pretrain(out, folder, steps):
    """minidl pretrain's Run on the ranks: train ``folder`` (fresh or resumed) to ``steps``."""
    from test_pretrain import TEXTS

    from minidl.apps.pretrain import Run
    run = Run(folder, pretrain_config(int(steps)), texts=TEXTS, verbose=0)
    result = run.train()
    if run.main:
        md.save({"weights": run.model.state_dict(), "losses": result["losses"],
                 "world_size": run.comm.world_size}, os.path.join(out, "pretrain.npz"))


def worker_fail(out, how):
    """Rank 1 fails ``how`` after a first synchronised step; rank 0 keeps training."""
    from minidl import distributed, optim
    from minidl import functions as F
    distributed.init()
    model = fit_model(seed=0)
    ddp = distributed.DistributedDataParallel(model)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x = md.tensor(np.ones((4, 5), dtype="float32"))
    for step in range(1000):
        if step == 1 and distributed.get_rank() == 1:
            if how == "raise":
                raise RuntimeError("a planted failure on rank 1")
            if how == "kill":
                os.kill(os.getpid(), 9)
            if how == "leave":
                sys.exit(0)   # quietly: only the others' timeout can notice
        optimizer.zero_grad()
        F.mse_loss(ddp(x), md.tensor(np.zeros((4, 1), dtype="float32"))).backward()
        ddp.sync_gradients()
        optimizer.step()
        time.sleep(0.01)


# ============================================================================= the tests
@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    if _skip_reason():
        pytest.skip(_skip_reason())
    out = tmp_path_factory.mktemp("collectives")
    result, _ = run_ranks("collectives", out)
    ran_ok(result)
    return [md.load(str(out / f"rank{r}.npz")) for r in range(2)]


@needs_mpi
def test_the_job_has_two_ranks_talking_over_mpi(collectives):
    assert [c["world_size"] for c in collectives] == [2, 2]
    assert collectives[0]["engine"] == "mpi"


@needs_mpi
def test_all_reduce_sums_averages_and_takes_extremes_on_every_rank(collectives):
    expected = {"sum": [3.0, -2.0, 6.0], "mean": [1.5, -1.0, 3.0], "max": [2.0, 0.0, 3.0],
                "min": [1.0, -2.0, 3.0]}
    for found in collectives:
        for op, values in expected.items():
            np.testing.assert_allclose(found[f"reduce_{op}"], values, err_msg=op)


@needs_mpi
def test_all_reduce_of_a_strided_view_changes_only_the_view(collectives):
    base = np.arange(12.0).reshape(3, 4)
    expected = base.copy()
    expected[:, ::2] *= 3                       # (1 + 2) ·, summed over the two ranks
    np.testing.assert_array_equal(collectives[0]["strided"], expected)
    untouched = collectives[1]["strided"][:, 1::2]
    np.testing.assert_array_equal(untouched, base[:, 1::2] * 2)


@needs_mpi
def test_broadcast_copies_the_root_to_every_rank(collectives):
    for found in collectives:
        np.testing.assert_array_equal(found["broadcast"], [10.0, 10.0, 10.0])
        np.testing.assert_array_equal(found["object"]["W"], np.eye(2) * 7)
        assert found["object"]["name"] == "r0" and found["object"]["step"] == 3


@needs_mpi
def test_bucketed_all_reduce_equals_per_parameter_all_reduce(collectives):
    assert collectives[0]["messages_bucketed"] == 1
    assert collectives[0]["messages_per_parameter"] == 4
    for found in collectives:
        for bucketed, single in zip(found["bucketed"], found["per_parameter"]):
            np.testing.assert_array_equal(bucketed, single)


@needs_mpi
def test_synced_gradients_are_the_mean_of_the_ranks_gradients(collectives):
    for k, synced in enumerate(collectives[0]["bucketed"]):
        mean = (collectives[0]["raw"][k] + collectives[1]["raw"][k]) / 2
        np.testing.assert_allclose(synced, mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(synced, collectives[1]["bucketed"][k])


@needs_mpi
def test_gradients_of_uneven_shards_weighted_by_size_equal_the_whole_batch_gradient(
        collectives):
    for found in collectives:
        for shard, whole in zip(found["shard_grads"], collectives[0]["whole_grads"]):
            np.testing.assert_allclose(shard, whole, rtol=1e-5, atol=1e-6)


@needs_mpi
def test_a_gradient_missing_on_a_rank_counts_as_zero_and_missing_everywhere_stays_none(
        collectives):
    for found in collectives:
        np.testing.assert_array_equal(found["half_used"], np.full((2, 1), 0.5))
        assert found["never_used_is_none"]


@needs_mpi
def test_the_wrapper_starts_every_rank_from_rank_0s_weights(collectives):
    reference = fit_model(seed=10).state_dict()
    for found in collectives:
        assert max_difference(reference, found["broadcast_weights"]) == 0.0


@needs_mpi
def test_ranks_that_built_different_models_are_told_so_on_every_rank(collectives):
    for found in collectives:
        assert "the ranks built different models" in found["different_models"]
    assert "rank 0 has ['W', [3, 2]" in collectives[1]["different_models"]


@needs_mpi
def test_sampler_shards_partition_every_epoch_across_ranks(collectives):
    per_rank = [json.loads(c["sampler"]) for c in collectives]
    for epoch in range(3):
        together = per_rank[0][epoch] + per_rank[1][epoch]
        assert sorted(together) == list(range(23)), f"epoch {epoch}"
    assert per_rank[0][0] != per_rank[0][1]      # a new order each epoch


@needs_mpi
def test_fit_on_two_ranks_with_half_batches_equals_fit_on_one(tmp_path):
    result, _ = run_ranks("fit", tmp_path)
    ran_ok(result)
    parallel = md.load(str(tmp_path / "fit.npz"))
    model, history = run_fit()
    assert max_difference(model.state_dict(), parallel["weights"]) <= TOLERANCE
    for key, values in history.items():
        np.testing.assert_allclose(parallel["history"][key], values, rtol=1e-5, err_msg=key)
    writes = [json.loads((tmp_path / f"writes{r}.json").read_text()) for r in range(2)]
    assert len(writes[0]) == 3 and writes[1] == []   # only rank 0 writes checkpoints


@needs_mpi
def test_pretraining_on_two_ranks_equals_pretraining_on_one(tmp_path):
    from test_pretrain import TEXTS

    from minidl.apps.pretrain import Run
    result, _ = run_ranks("pretrain", tmp_path, tmp_path / "two", 6)
    ran_ok(result)
    parallel = md.load(str(tmp_path / "pretrain.npz"))
    assert parallel["world_size"] == 2
    single = Run(str(tmp_path / "one"), pretrain_config(6), texts=TEXTS, verbose=0)
    losses = single.train()["losses"]
    assert max_difference(single.model.state_dict(), parallel["weights"]) <= TOLERANCE
    np.testing.assert_allclose(parallel["losses"], losses, rtol=1e-5)


@needs_mpi
def test_two_ranks_resuming_a_one_rank_checkpoint_continue_as_one_rank_would(tmp_path):
    from test_pretrain import TEXTS

    from minidl.apps.pretrain import Run
    straight = Run(str(tmp_path / "straight"), pretrain_config(6), texts=TEXTS, verbose=0)
    reference = straight.train()["losses"]
    Run(str(tmp_path / "run"), pretrain_config(3), texts=TEXTS, verbose=0).train()
    result, _ = run_ranks("pretrain", tmp_path, tmp_path / "run", 6)
    ran_ok(result)
    resumed = md.load(str(tmp_path / "pretrain.npz"))
    np.testing.assert_allclose(resumed["losses"], reference[3:], rtol=1e-5)
    assert max_difference(straight.model.state_dict(), resumed["weights"]) <= TOLERANCE
    # ... and the checkpoint rank 0 wrote resumes in one process again
    again = Run(str(tmp_path / "run"), pretrain_config(6), texts=TEXTS, verbose=0)
    assert again.step == 6


@needs_mpi
def test_minidl_pretrain_under_mpiexec_trains_data_parallel_with_the_same_command(tmp_path):
    result, _ = run_ranks("cli", tmp_path / "run", timeout_s=180)
    ran_ok(result)
    assert "on 2 ranks" in result.stderr and "tok/s on 2 ranks" in result.stderr
    assert result.stdout.count("held-out perplexity") == 1      # rank 0 alone reports
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    commands = (tmp_path / "run" / "commands.txt").read_text()
    assert commands.count("mpiexec -n 2 minidl pretrain") == 1


@needs_mpi
def test_minidl_pretrain_refuses_a_batch_smaller_than_the_job(tmp_path):
    result, seconds = run_ranks("cli", tmp_path / "run", "--batch", "1", timeout_s=60)
    assert result.returncode != 0
    assert "--batch 1 cannot be shared by 2 ranks" in result.stderr
    assert seconds < 30


@needs_mpi
def test_a_rank_that_raises_ends_the_job_at_once_with_its_error(tmp_path):
    result, seconds = run_ranks("fail", tmp_path, "raise", timeout_s=60)
    assert result.returncode != 0 and seconds < 30
    assert "RuntimeError: a planted failure on rank 1" in result.stderr
    assert "rank 1 of 2 stopped with RuntimeError; aborting the whole job" in result.stderr


@needs_mpi
def test_a_rank_killed_by_sigkill_ends_the_job(tmp_path):
    result, seconds = run_ranks("fail", tmp_path, "kill", timeout_s=60)
    assert result.returncode != 0 and seconds < 30


@needs_mpi
def test_a_rank_that_silently_leaves_trips_the_others_timeout(tmp_path):
    result, seconds = run_ranks("fail", tmp_path, "leave", dist_timeout="2", timeout_s=60)
    assert result.returncode != 0 and seconds < 30
    assert "rank 0 of 2 waited 2 s in all_reduce" in result.stderr


# ============================================================================= entry point
def _cli(folder, *extra):
    from minidl.cli import main
    arguments = ["pretrain", folder, "--steps", "3", "--batch", "4", "--context", "8",
                 "--d-model", "8", "--layers", "1", "--heads", "2", "--vocab", "200",
                 "--eval-every", "3", "--checkpoint-every", "3", "--warmup", "1",
                 "--dropout", "0", *extra]
    sys.argv = ["minidl"] + arguments
    sys.exit(main(arguments))


if __name__ == "__main__":
    worker, *arguments = sys.argv[1:]
    {"collectives": worker_collectives, "fit": worker_fit, "pretrain": worker_pretrain,
     "fail": worker_fail, "cli": _cli}[worker](*arguments)
