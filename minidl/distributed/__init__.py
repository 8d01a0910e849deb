"""Data-parallel training: one model, N processes, each on its shard of every batch.

    mpiexec -n 2 minidl pretrain RUN ...            # the command line, unchanged otherwise
    mpiexec -n 2 python train.py                    # fit() in train.py runs data-parallel

Under a launcher (``mpiexec -n N``), every process runs the same program as one *rank* of the
job. Each rank holds the whole model, computes the gradient of its shard of the global batch,
and the ranks average their gradients (an *all-reduce*) before every optimizer step, so all
copies take the same step — the step one process would take with the whole batch.

    from minidl import distributed
    comm = distributed.init()                    # rank, size from the launcher; 1 without one
    model = distributed.DistributedDataParallel(model)   # rank 0's weights on every rank
    sampler = distributed.DistributedSampler(len(data), batch_size=64, seed=0)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for indices in sampler.batches():        # this rank's part of each global batch
            loss = loss_fn(model(x[indices]), y[indices])
            optimizer.zero_grad()
            loss.backward()
            model.sync_gradients(weight=len(indices))
            optimizer.step()
    if distributed.is_main_process():            # rank 0 prints and writes checkpoints
        md.save(model.state_dict(), "model.npz")

``minidl.training.fit`` and ``minidl pretrain`` do all of this themselves when started under
``mpiexec``. The communication engines live in the backend (``minidl.backend.communicator``):
MPI through mpi4py for host arrays, NCCL for GPU arrays. Jobs of several processes need
``pip install "minidl[dist]"`` (mpi4py and the mpich wheel, which brings ``mpiexec``); a process
started on its own works without it, as a job of one rank.

A rank that dies ends the whole job: an uncaught exception aborts every rank (MPI_Abort),
mpiexec ends the job when a process is killed, and a rank that waits longer than
``MINIDL_DIST_TIMEOUT`` seconds (default 600) in a collective reports it and aborts.
"""
from minidl.backend.communicator import Communicator, DistributedError
from minidl.distributed.data_parallel import Bucket, DistributedDataParallel, plan_buckets
from minidl.distributed.process import (abort_on_error, all_reduce, barrier, broadcast,
                                        broadcast_object, get_comm, get_rank, get_world_size,
                                        init, is_available, is_initialized, is_launched,
                                        is_main_process, requirement)
from minidl.distributed.sampler import DistributedSampler, shard_batches, shard_bounds

__all__ = ["init", "get_comm", "get_rank", "get_world_size", "is_main_process", "is_available",
           "is_launched", "is_initialized", "requirement", "all_reduce", "broadcast",
           "broadcast_object", "barrier", "abort_on_error", "DistributedDataParallel",
           "Bucket", "plan_buckets", "DistributedSampler", "shard_bounds", "shard_batches",
           "Communicator", "DistributedError"]
