"""``DistributedDataParallel``: one model trained by N processes as if by one.

Every rank holds the whole model. Each step, each rank takes its shard of the global batch,
runs forward and ``backward()`` on it, and then the ranks *average their gradients*:

    g = Σᵣ wᵣ gᵣ / Σᵣ wᵣ          (wᵣ: the number of samples of rank r's shard)

Because the loss is a mean over samples, the mean gradient over the whole batch is exactly
this weighted mean of the shards' mean gradients — so after the all-reduce every rank holds
the gradient of the global batch, takes the same optimizer step, and the copies stay
identical (up to float round-off from adding in a different order).

    model = DistributedDataParallel(model)       # rank 0's weights are sent to every rank
    loss = loss_fn(model(x_shard), y_shard)
    loss.backward()
    model.sync_gradients(weight=len(x_shard))    # all-reduce, in a few large buffers
    optimizer.step()

PyTorch runs the all-reduce inside ``backward()`` through hooks; minidl makes it one visible
call, which also makes gradient accumulation plain: call ``backward()`` on several
micro-batches, then ``sync_gradients()`` once.

**Buckets.** Sending one message per parameter pays the per-message latency (microseconds on
a machine, tens of microseconds over a network) once per parameter; copying the gradients
into a few flat buffers of up to ``bucket_cap_mb`` (25 MB, PyTorch's default) pays it a few
times per step and sends the same bytes. Buckets are filled in reverse order of definition,
the order in which ``backward()`` produces gradients (so that a later version could send a
full bucket while backward is still running).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from minidl import backend
from minidl.autograd import Tensor, no_grad
from minidl.backend.communicator import Communicator, DistributedError
from minidl.nn import Module, Parameter
from minidl.distributed.process import get_comm

__all__ = ["DistributedDataParallel", "Bucket", "plan_buckets"]


class Bucket:
    """Parameters whose gradients travel together in one flat buffer.

    Layout of the buffer (``size + len(params) + 1`` elements of the parameters' dtype):
    ``[grad₀.ravel(), grad₁.ravel(), …, present₀, present₁, …, weight]`` — each gradient
    scaled by the rank's weight, a 1 for each parameter that has a gradient on this rank, and
    the weight itself, so that one all-reduce also gives Σ weights and, per parameter, whether
    any rank has a gradient (a parameter unused on every rank keeps ``grad = None``).
    """

    def __init__(self, params: List[Parameter]):
        self.params = params
        self.offsets: List[int] = []
        size = 0
        for p in params:
            self.offsets.append(size)
            size += p.size
        self.size = size
        self.dtype = params[0].dtype
        self.device = params[0].device

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"<Bucket of {len(self.params)} parameters, {self.nbytes / 2**20:.2f} MiB>"


def plan_buckets(params: List[Parameter], bucket_cap_mb: float) -> List[Bucket]:
    """Group ``params`` into buckets of one device and dtype, each up to ``bucket_cap_mb``
    MiB (a larger parameter gets a bucket of its own), in reverse order of ``params``.
    ``bucket_cap_mb=0`` gives one bucket per parameter (one message each)."""
    groups: Dict[Tuple[str, Any], List[Parameter]] = {}
    for p in reversed(params):
        groups.setdefault((p.device, p.dtype), []).append(p)
    cap = bucket_cap_mb * 2**20
    buckets: List[Bucket] = []
    for members in groups.values():
        current: List[Parameter] = []
        current_bytes = 0
        for p in members:
            nbytes = p.size * p.dtype.itemsize
            if current and (cap <= 0 or current_bytes + nbytes > cap):
                buckets.append(Bucket(current))
                current, current_bytes = [], 0
            current.append(p)
            current_bytes += nbytes
        if current:
            buckets.append(Bucket(current))
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the ranks of ``comm``.

    On creation, checks that every rank built the same parameters (names, shapes, dtypes) and
    copies rank 0's values to all ranks. Calling the wrapper calls ``module``; the
    parameters, ``state_dict()`` and ``load_state_dict()`` are the module's own, without a
    prefix, so checkpoints move freely between wrapped and unwrapped models and between jobs
    of any size. Other attributes are read from ``module`` (``ddp.config`` is
    ``module.config``).

    Args:
        module: the model (an ``nn.Module``).
        comm: the job's communicator (default: ``minidl.distributed.init()``).
        bucket_cap_mb: the largest gradient buffer, in MiB (0: one message per parameter).
        broadcast_parameters: copy rank 0's parameters to every rank now.

    Attributes:
        comm_seconds: time spent in ``sync_gradients`` (packing, communicating, unpacking).
        syncs: number of ``sync_gradients`` calls that communicated.
    """

    def __init__(self, module: Module, comm: Optional[Communicator] = None,
                 bucket_cap_mb: float = 25.0, broadcast_parameters: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, got "
                            f"{type(module).__name__}")
        if bucket_cap_mb < 0:
            raise ValueError(f"bucket_cap_mb must be >= 0, got {bucket_cap_mb}")
        self.module = module
        self.comm = comm if comm is not None else get_comm()
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.comm_seconds, self.syncs = 0.0, 0
        self._plan: Optional[Tuple[tuple, List[Bucket]]] = None
        if self.comm.world_size > 1:
            self._check_same_parameters()
            if broadcast_parameters:
                self.broadcast_parameters()

    # -- the wrapped module
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def named_parameters(self, prefix: str = ""):
        return self.module.named_parameters(prefix)

    def __getattr__(self, name: str) -> Any:
        module = self.__dict__.get("module")
        if module is None:
            raise AttributeError(name)
        return getattr(module, name)

    def extra_repr(self) -> str:
        return f"rank {self.comm.rank} of {self.comm.world_size}, " \
               f"bucket_cap_mb={self.bucket_cap_mb:g}"

    # -- keeping the ranks' copies the same
    def _check_same_parameters(self) -> None:
        """Raise ``DistributedError`` on every rank unless all ranks have the parameters of
        rank 0 (names, shapes and dtypes, in order)."""
        mine = [[name, list(p.shape), str(p.dtype)] for name, p in self.named_parameters()]
        reference = self.comm.broadcast_object(mine, 0)
        difference = next((f"rank 0 has {a}, rank {self.comm.rank} has {b}"
                           for a, b in zip(reference, mine) if a != b), None)
        if difference is None and len(reference) != len(mine):
            difference = f"rank 0 has {len(reference)} parameters, rank {self.comm.rank} " \
                         f"has {len(mine)}"
        agree = backend.host_array([0.0 if difference else 1.0], dtype="float64")
        self.comm.all_reduce(agree, "min")
        if agree[0] != 1.0:
            raise DistributedError("DistributedDataParallel: the ranks built different models ("
                                   + (difference or "see the other ranks' messages") +
                                   "); every rank must build the same model")

    def broadcast_parameters(self, root: int = 0) -> None:
        """Copy rank ``root``'s parameter values to every rank (in place: optimizers keep
        their references)."""
        with no_grad():
            for _, p in self.named_parameters():
                self.comm.broadcast(p.data, root)

    def parameters_in_sync(self) -> bool:
        """Whether every rank holds the same parameter values (compares per-parameter sums
        and sums of squares in float64 across ranks; for tests and debugging)."""
        sums = []
        for _, p in self.named_parameters():
            host = backend.to_numpy(p.data).astype("float64")
            sums += [float(host.sum()), float((host * host).sum())]
        high = backend.host_array(sums, dtype="float64")
        low = high.copy()
        self.comm.all_reduce(high, "max")
        self.comm.all_reduce(low, "min")
        return bool((high == low).all())

    # -- averaging the gradients
    def buckets(self) -> List[Bucket]:
        """The current bucket plan (re-planned when the set of trainable parameters changes,
        e.g. after freezing layers)."""
        params = [p for _, p in self.named_parameters() if p.requires_grad]
        key = tuple((id(p), p.shape, p.dtype, p.device) for p in params)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, plan_buckets(params, self.bucket_cap_mb) if params else [])
        return self._plan[1]

    def sync_gradients(self, weight: Optional[float] = None) -> None:
        """Replace every trainable parameter's gradient by its average over the ranks.

        ``weight``: how much this rank's gradient counts, normally the number of samples it
        saw (a rank with an empty shard passes 0); the result is Σᵣ wᵣ gᵣ / Σᵣ wᵣ. Without it,
        the plain mean over ranks. A parameter without a gradient counts as zero; one without
        a gradient on every rank keeps ``grad = None``. Does nothing in a job of one rank.
        """
        if self.comm.world_size == 1:
            return
        started = time.perf_counter()
        for bucket in self.buckets():
            self._sync_bucket(bucket, weight)
        self.comm_seconds += time.perf_counter() - started
        self.syncs += 1

    def _sync_bucket(self, bucket: Bucket, weight: Optional[float]) -> None:
        xp = backend.get_array_module(bucket.params[0].data)
        n = bucket.size
        flat = xp.empty(n + len(bucket.params) + 1, dtype=bucket.dtype)
        header = []
        for p, offset in zip(bucket.params, bucket.offsets):
            if p.grad is None:
                flat[offset:offset + p.size] = 0
                header.append(0.0)
            else:
                flat[offset:offset + p.size] = p.grad.data.reshape(-1)
                header.append(1.0)
        header.append(1.0 if weight is None else float(weight))
        if weight is not None and weight != 1:
            flat[:n] *= weight
        flat[n:] = xp.asarray(header, dtype=bucket.dtype)
        self.comm.all_reduce(flat, "sum")
        counts = backend.to_numpy(flat[n:])     # ranks with a gradient; Σ weights
        total = float(counts[-1])
        if total > 0:
            flat[:n] /= total
        for p, offset, count in zip(bucket.params, bucket.offsets, counts[:-1]):
            # views of this step's buffer: a new buffer each step, so nothing is shared
            p.grad = Tensor(flat[offset:offset + p.size].reshape(p.shape)) if count > 0 \
                else None
