"""minidl.distributed in one process: the launcher's environment, the choice of engine, the
shards, the buckets, and a job of one rank (no MPI needed). The tests that run several ranks
under ``mpiexec -n 2`` are in ``test_distributed_mpi.py``."""
import builtins

import numpy as np
import pytest

import minidl as md
from minidl import distributed, nn, optim
from minidl import functions as F
from minidl.backend import communicator as comm_module
from minidl.backend.communicator import (DistributedError, LocalCommunicator, choose_engine,
                                         launch_environment)
from minidl.distributed import (DistributedDataParallel, DistributedSampler, plan_buckets,
                                shard_batches, shard_bounds)
from minidl.training import fit


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """Each test starts as a process on its own, with no communicator yet."""
    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                 "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "PMIX_RANK", "PMIX_SIZE",
                 "MINIDL_COMM", "MINIDL_DIST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed.process, "_comm", None)


# ----------------------------------------------------------------------------- the launcher
def test_launch_environment_reads_mpich_and_open_mpi_variables():
    hydra = launch_environment({"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1"})
    assert (hydra.rank, hydra.world_size, hydra.local_rank) == (1, 4, 1)
    ompi = launch_environment({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8",
                               "OMPI_COMM_WORLD_LOCAL_RANK": "1"})
    assert (ompi.rank, ompi.world_size, ompi.local_rank, ompi.launcher) == (3, 8, 1, "Open MPI")


def test_a_process_started_on_its_own_has_no_launch():
    assert launch_environment({}) is None
    assert not distributed.is_launched()
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert distributed.is_main_process()


def test_a_garbled_launcher_environment_is_an_error_naming_the_variables():
    with pytest.raises(DistributedError, match="PMI_RANK='x'"):
        launch_environment({"PMI_RANK": "x", "PMI_SIZE": "2"})
    with pytest.raises(DistributedError, match="rank 2 of 2"):
        launch_environment({"PMI_RANK": "2", "PMI_SIZE": "2"})


def test_the_timeout_comes_from_the_environment_and_must_be_positive(monkeypatch):
    assert comm_module.default_timeout() == 600.0
    monkeypatch.setenv("MINIDL_DIST_TIMEOUT", "2.5")
    assert comm_module.default_timeout() == 2.5
    monkeypatch.setenv("MINIDL_DIST_TIMEOUT", "0")
    with pytest.raises(DistributedError, match="positive"):
        comm_module.default_timeout()


# ----------------------------------------------------------------------------- the engine
def test_one_rank_needs_no_engine():
    assert choose_engine("cpu", 1) == "local"
    assert choose_engine("cuda", 1, nccl_available=True, gpus_on_node=8) == "local"


def test_host_and_strict_arrays_go_over_mpi():
    assert choose_engine("cpu", 4) == "mpi"
    assert choose_engine("strict", 2) == "mpi"


def test_gpu_arrays_go_over_nccl_when_each_rank_has_a_gpu():
    assert choose_engine("cuda", 8, nccl_available=True, gpus_on_node=8, ranks_on_node=8) == \
        "nccl"


def test_gpu_arrays_fall_back_to_mpi_host_copies_without_nccl_or_with_shared_gpus():
    assert choose_engine("cuda", 2, nccl_available=False, gpus_on_node=2, ranks_on_node=2) == \
        "mpi"
    assert choose_engine("cuda", 4, nccl_available=True, gpus_on_node=2, ranks_on_node=4) == \
        "mpi"


def test_asking_for_nccl_where_it_cannot_work_says_why():
    with pytest.raises(DistributedError, match="only CuPy arrays"):
        choose_engine("cpu", 2, requested="nccl")
    with pytest.raises(DistributedError, match="no NCCL"):
        choose_engine("cuda", 2, nccl_available=False, gpus_on_node=2, ranks_on_node=2,
                      requested="nccl")
    with pytest.raises(DistributedError, match="4 ranks share 2 GPU"):
        choose_engine("cuda", 4, nccl_available=True, gpus_on_node=2, ranks_on_node=4,
                      requested="nccl")
    with pytest.raises(DistributedError, match="unknown communication engine 'tcp'"):
        choose_engine("cpu", 2, requested="tcp")


def test_asking_for_mpi_always_gets_mpi():
    assert choose_engine("cuda", 2, nccl_available=True, gpus_on_node=2, ranks_on_node=2,
                         requested="mpi") == "mpi"


def test_the_nccl_probe_says_no_without_a_gpu():
    from minidl.backend import nccl
    available, gpus = nccl.probe()
    assert isinstance(available, bool) and gpus >= 0
    if not md.cuda.is_available():
        assert gpus == 0


def test_the_nccl_unique_id_survives_the_trip_over_mpi():
    from minidl.backend.nccl import _decode_id, _encode_id
    assert _decode_id(_encode_id(b"\x00\x01secret")) == b"\x00\x01secret"   # CuPy 13+
    assert _decode_id(_encode_id((1, -2, 3))) == (1, -2, 3)                 # older CuPy


# ----------------------------------------------------------------------------- without mpi4py
def test_a_job_of_several_ranks_without_mpi4py_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_mpi4py(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError("No module named 'mpi4py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpi4py)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(DistributedError, match=r'pip install "minidl\[dist\]"'):
        distributed.init()


def test_without_a_launcher_everything_works_without_mpi(monkeypatch):
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
        (_ for _ in ()).throw(ImportError(name)) if name.startswith("mpi4py")
        else real_import(name, *a, **k)))
    comm = distributed.init()
    assert isinstance(comm, LocalCommunicator) and comm.world_size == 1
    assert distributed.init() is comm


# ----------------------------------------------------------------------------- one rank
def test_collectives_of_one_rank_are_the_identity():
    x = md.tensor([1.0, -2.0])
    assert distributed.all_reduce(x, "mean") is x
    np.testing.assert_array_equal(x.numpy(), [1.0, -2.0])
    a = np.arange(3.0)
    for op in ("sum", "max", "min"):
        np.testing.assert_array_equal(distributed.all_reduce(a, op), [0.0, 1.0, 2.0])
    assert distributed.all_reduce(2.5, "sum") == 2.5
    assert distributed.broadcast(a) is a
    state = {"W": np.ones((2, 2)), "step": 3}
    assert distributed.broadcast_object(state) is state
    distributed.barrier()


def test_an_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="op must be one of sum, max, min"):
        LocalCommunicator().all_reduce(np.ones(2), "prod")


def test_objects_travel_as_json_and_arrays_without_pickle():
    state = {"model": {"W": np.arange(6, dtype=np.float32).reshape(2, 3)},
             "steps": [1, 2.5, None, True, "x"], "pair": (np.int64(4), np.zeros(0))}
    arrays = []
    skeleton = comm_module._skeleton(state, arrays)
    assert [a.dtype for a in arrays] == [np.float32, np.float64]
    rebuilt = comm_module._rebuild(skeleton["root"], arrays)
    np.testing.assert_array_equal(rebuilt["model"]["W"], state["model"]["W"])
    assert rebuilt["steps"] == [1, 2.5, None, True, "x"] and rebuilt["pair"][0] == 4
    with pytest.raises(TypeError, match="cannot send a object"):
        comm_module._skeleton({"f": object()}, [])


# ----------------------------------------------------------------------------- shards
def test_shards_are_contiguous_and_differ_by_at_most_one():
    assert [shard_bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [shard_bounds(2, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]
    with pytest.raises(ValueError, match="rank 2 is not in a job of 2"):
        shard_bounds(4, 2, 2)


def test_every_rank_gets_the_same_number_of_batches_even_when_its_part_is_empty():
    order = np.arange(9)
    parts = [list(shard_batches(order, 4, r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert [list(p[2]) for p in parts] == [[8], [], []]
    assert [list(p[0]) for p in parts] == [[0, 1], [2], [3]]


@pytest.mark.parametrize("n, batch, world", [(10, 4, 2), (37, 8, 3), (5, None, 4), (3, 2, 4)])
def test_sampler_shards_partition_each_epoch(n, batch, world):
    for epoch in range(3):
        seen = []
        for rank in range(world):
            sampler = DistributedSampler(n, batch, seed=7, rank=rank, world_size=world)
            sampler.set_epoch(epoch)
            mine = list(sampler)
            assert len(mine) == len(sampler)
            assert len(list(sampler.batches())) == sampler.num_batches()
            seen += mine
        assert sorted(seen) == list(range(n))


def test_sampler_order_is_seeded_the_same_on_every_rank_and_new_each_epoch():
    a = DistributedSampler(50, 10, seed=3, rank=0, world_size=2)
    b = DistributedSampler(50, 10, seed=3, rank=1, world_size=2)
    np.testing.assert_array_equal(a.order(), b.order())
    first = a.order()
    a.set_epoch(1)
    assert not np.array_equal(first, a.order())
    assert list(DistributedSampler(4, shuffle=False, rank=0, world_size=1)) == [0, 1, 2, 3]


def test_sampler_parts_of_a_global_batch_are_that_batch_of_one_process():
    whole = list(DistributedSampler(20, 6, seed=1, rank=0, world_size=1).batches())
    parts = [list(DistributedSampler(20, 6, seed=1, rank=r, world_size=2).batches())
             for r in range(2)]
    for k, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][k], parts[1][k]]), batch)


def test_sampler_drop_last_leaves_out_the_short_batch():
    sampler = DistributedSampler(10, 4, rank=1, world_size=2, drop_last=True)
    assert sampler.num_batches() == 2 and len(sampler) == 4


# ----------------------------------------------------------------------------- buckets
def _params(*shapes, dtype="float32"):
    return [nn.Parameter(np.zeros(s, dtype=dtype)) for s in shapes]


def test_buckets_fill_in_reverse_order_up_to_the_cap():
    a, b, c = _params((256, 256), (256, 256), (10,))     # 256 KiB, 256 KiB, 40 B
    buckets = plan_buckets([a, b, c], bucket_cap_mb=0.5)
    assert [[p is q for p, q in zip(bk.params, ps)] for bk, ps in
            zip(buckets, [[c, b], [a]])] == [[True, True], [True]]
    assert buckets[0].offsets == [0, 10] and buckets[0].size == 10 + 256 * 256


def test_a_zero_cap_sends_one_message_per_parameter_and_dtypes_never_mix():
    params = _params((3,), (4,)) + _params((5,), dtype="float64")
    assert len(plan_buckets(params, 0)) == 3
    assert {b.dtype for b in plan_buckets(params, 25)} == {np.dtype("float32"),
                                                           np.dtype("float64")}


# ----------------------------------------------------------------------------- the wrapper
def tiny_model(seed=0):
    md.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def test_the_wrapper_is_the_module_for_calls_state_and_attributes():
    model = tiny_model()
    ddp = DistributedDataParallel(model)
    x = md.tensor(np.ones((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(ddp(x).numpy(), model(x).numpy())
    assert list(ddp.state_dict()) == list(model.state_dict()) == ["0.W", "0.b", "2.W", "2.b"]
    assert ddp.parameters()[0] is model.parameters()[0]
    model.config = {"layers": 2}
    assert ddp.config is model.config
    ddp.eval()
    assert not model.training


def test_sync_gradients_of_one_rank_leaves_the_gradients_alone():
    model = tiny_model()
    ddp = DistributedDataParallel(model)
    loss = (ddp(md.tensor(np.ones((2, 3), dtype=np.float32))) ** 2).mean()
    loss.backward()
    before = [p.grad for p in model.parameters()]
    ddp.sync_gradients(weight=2)
    assert all(p.grad is g for p, g in zip(model.parameters(), before))
    assert ddp.syncs == 0 and ddp.parameters_in_sync()


def test_the_wrapper_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="wraps an nn.Module, got function"):
        DistributedDataParallel(lambda x: x)


def test_fit_of_one_process_is_unchanged_by_the_data_parallel_switch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = x[:, :1] * 2.0
    results = []
    for switch in (None, False):
        model = tiny_model()
        md.manual_seed(5)
        history = fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), x, y,
                      batch_size=6, epochs=2, verbose=0, data_parallel=switch)
        results.append((history.history["loss"], model.state_dict()))
    assert results[0][0] == results[1][0]
    for key in results[0][1]:
        np.testing.assert_array_equal(results[0][1][key], results[1][1][key])


def test_abort_on_error_changes_nothing_in_a_job_of_one_rank():
    distributed.init()
    with pytest.raises(KeyError):
        with distributed.abort_on_error("here: "):
            raise KeyError("x")


# ----------------------------------------------------------------------------- NCCL, without a GPU
# No GPU here: the NCCL communicator runs against a stand-in for CuPy and its NCCL module that
# keeps arrays in host memory and plays the other rank of a 2-rank job (every rank holds the
# same values, so a sum doubles them). This checks the glue — the unique id's trip over MPI,
# pointers, counts, NCCL's dtype and op codes, strided arrays, the deadline — not NCCL itself.
class FakeDeviceArray:
    """A host array that looks like a CuPy array to nccl.py (``.data.ptr``, flags, views)."""

    registry: dict = {}

    def __init__(self, a):
        self.a = a

    dtype = property(lambda self: self.a.dtype)
    size = property(lambda self: self.a.size)
    flags = property(lambda self: self.a.flags)

    @property
    def data(self):
        FakeDeviceArray.registry[self.a.ctypes.data] = self.a
        return type("Memory", (), {"ptr": self.a.ctypes.data})()

    def reshape(self, *shape):
        return FakeDeviceArray(self.a.reshape(*shape))

    def view(self, dtype):
        return FakeDeviceArray(self.a.view(dtype))

    def __setitem__(self, key, value):
        self.a[key] = value.a if isinstance(value, FakeDeviceArray) else value


class FakeNcclCommunicator:
    calls: list = []

    def __init__(self, ndev, unique_id, rank):
        self.calls.append(("init", ndev, unique_id, rank))

    def allReduce(self, send, receive, count, dtype, op, stream):
        assert send == receive
        buffer = FakeDeviceArray.registry[send]
        assert buffer.size == count
        if op == 0:
            buffer *= 2          # the other rank holds the same values
        self.calls.append(("allReduce", count, dtype, op, stream))

    def bcast(self, buffer, count, dtype, root, stream):
        self.calls.append(("bcast", count, dtype, root, stream))

    def check_async_error(self):
        pass

    def abort(self):
        self.calls.append(("abort",))


class FakeStream:
    ptr = 1234
    done = True

    def record(self):
        return self


@pytest.fixture
def fake_cupy(monkeypatch):
    import sys
    import types
    nccl = types.SimpleNamespace(
        NCCL_SUM=0, NCCL_PROD=1, NCCL_MAX=2, NCCL_MIN=3, NCCL_INT8=0, NCCL_UINT8=1,
        NCCL_INT32=2, NCCL_UINT32=3, NCCL_INT64=4, NCCL_UINT64=5, NCCL_FLOAT16=6,
        NCCL_FLOAT32=7, NCCL_FLOAT64=8, available=True, get_unique_id=lambda: b"unique",
        NcclCommunicator=FakeNcclCommunicator)
    stream = FakeStream()
    cuda = types.SimpleNamespace(nccl=nccl, get_current_stream=lambda: stream)
    cupy = types.SimpleNamespace(
        cuda=cuda, uint8=np.uint8,
        ascontiguousarray=lambda x, dtype=None: FakeDeviceArray(
            np.ascontiguousarray(x.a, dtype=dtype)))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    FakeNcclCommunicator.calls = []
    return stream


class FakeMPI:
    rank, world_size, timeout, seconds_waiting = 0, 2, 0.05, 0.0

    def __init__(self):
        self.sent = []

    def broadcast_bytes(self, payload, root=0):
        self.sent.append(payload)
        return payload

    def timed_out(self, what):
        raise TimeoutError(what)


def test_nccl_joins_with_the_unique_id_rank_0_sends_over_mpi(fake_cupy):
    from minidl.backend.nccl import NCCLCommunicator
    mpi = FakeMPI()
    NCCLCommunicator(mpi)
    assert mpi.sent == [b"Bunique"]
    assert FakeNcclCommunicator.calls == [("init", 2, b"unique", 0)]


def test_nccl_all_reduce_passes_the_buffer_count_dtype_op_and_stream(fake_cupy):
    from minidl.backend.nccl import NCCLCommunicator
    comm = NCCLCommunicator(FakeMPI())
    x = FakeDeviceArray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert comm.all_reduce(x, "sum") is x
    np.testing.assert_array_equal(x.a, np.arange(6).reshape(2, 3) * 2)
    assert FakeNcclCommunicator.calls[-1] == ("allReduce", 6, 7, 0, 1234)
    comm.all_reduce(FakeDeviceArray(np.ones(2, dtype=np.int64)), "max")
    assert FakeNcclCommunicator.calls[-1] == ("allReduce", 2, 4, 2, 1234)


def test_nccl_all_reduce_of_a_strided_view_or_an_odd_dtype_goes_through_a_copy(fake_cupy):
    from minidl.backend.nccl import NCCLCommunicator
    comm = NCCLCommunicator(FakeMPI())
    base = np.ones((3, 4), dtype=np.float32)
    comm.all_reduce(FakeDeviceArray(base[:, ::2]), "sum")
    np.testing.assert_array_equal(base, [[2, 1, 2, 1]] * 3)
    flags = FakeDeviceArray(np.array([True, False]))
    comm.all_reduce(flags, "sum")
    assert FakeNcclCommunicator.calls[-1][2] == 8          # sent as float64
    np.testing.assert_array_equal(flags.a, [True, False])


def test_nccl_broadcast_sends_bytes_from_the_root(fake_cupy):
    from minidl.backend.nccl import NCCLCommunicator
    comm = NCCLCommunicator(FakeMPI())
    comm.broadcast(FakeDeviceArray(np.zeros((2, 2), dtype=np.float64)), root=1)
    assert FakeNcclCommunicator.calls[-1] == ("bcast", 32, 1, 1, 1234)


def test_nccl_aborts_when_the_collective_never_finishes(fake_cupy):
    from minidl.backend.nccl import NCCLCommunicator
    comm = NCCLCommunicator(FakeMPI())
    fake_cupy.done = False
    with pytest.raises(TimeoutError, match="NCCL all_reduce of 3"):
        comm.all_reduce(FakeDeviceArray(np.ones(3, dtype=np.float32)))
    assert FakeNcclCommunicator.calls[-1] == ("abort",)
