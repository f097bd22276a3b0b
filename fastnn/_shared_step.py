"""Per-step gradient sums through shared memory, for data-parallel ranks on one machine.

fit(comm=...) with sync_every=1 uses this instead of an Allreduce when every rank is on one
machine (fastnn.distributed). See ``SharedGrads``.
"""

from __future__ import annotations

import os

import numpy as np


class SharedGrads:
    """Per-step gradient sums through shared memory, for ranks that share one machine.

    For the whole fit the parameters and optimiser state live once, in memory every rank maps
    (net.params, opt.m and opt.v point there; copied back by ``close``). Each step every rank
    writes its gradient into its own shared buffer; after a barrier, rank r updates its own
    slice of the parameters (and of the optimiser state) from the sum of every rank's
    gradient, added in rank order (backend ``apply_update_sum``); a second barrier hands the
    updated parameters to every rank. No Allreduce, no copy, and each rank does 1/size of the
    update. FASTNN_MPI_SHM=0 turns this off (the in-place Allreduce instead), as do backends
    without ``apply_update_sum`` (the Cython backend has it).

    The memory is a file that rank 0 creates (in /dev/shm where there is one) and removes as
    soon as every rank has mapped it, so nothing is left behind even if a rank dies. An MPI
    shared-memory window would do the same, but the PyPI Open MPI prints an error line for
    each window it creates when UCX finds no network.
    """

    MAX_RANKS = 8   # measured with 2; past 8 ranks (two barriers a step) the Allreduce

    @classmethod
    def create(cls, comm, MPI, model):
        size = comm.Get_size()
        want = (os.environ.get("FASTNN_MPI_SHM", "1") != "0" and 1 < size <= cls.MAX_RANKS
                and hasattr(model.backend, "apply_update_sum"))
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        ok = want and node.Get_size() == size
        mem = None
        if comm.allreduce(int(ok), op=MPI.MIN):
            mem = _shared_file(node, MPI, cls._nbytes(model, size))
        if mem is None:   # not one machine, turned off, or no shared memory: Allreduce
            node.Free()
            return None
        return cls(node, model, mem)

    @staticmethod
    def _layout(model, size):
        """(rows, padded row length): every rank's gradient, the parameters, the state."""
        opt, dt = model.optimizer, model.dtype
        line = 64 // dt.itemsize                      # buffers and slices on 64-byte lines
        n_state = sum(1 for k in ("m", "v") if getattr(opt, k) is not None
                      and getattr(opt, k).size)
        return size + 1 + n_state, -(-model.params.size // line) * line

    @classmethod
    def _nbytes(cls, model, size):
        rows, pad = cls._layout(model, size)
        return rows * pad * model.dtype.itemsize

    def __init__(self, node, model, mem):
        opt, dt, n = model.optimizer, model.dtype, model.params.size
        line = 64 // dt.itemsize
        rank, size = node.Get_rank(), node.Get_size()
        self.node, self.model, self.rank = node, model, rank
        self.names = [k for k in ("m", "v") if getattr(opt, k) is not None
                      and getattr(opt, k).size]
        rows, pad = self._layout(model, size)
        table = np.frombuffer(mem, dtype=dt, count=rows * pad).reshape(rows, pad)[:, :n]
        self.grads, common = list(table[:size]), list(table[size:])
        own = [model.net.params] + [getattr(opt, k) for k in self.names]
        if rank == 0:
            for dst, src in zip(common, own, strict=True):
                dst[...] = src
        node.Barrier()
        self.saved = own
        model.net.params = common[0]
        for k, buf in zip(self.names, common[1:], strict=True):
            setattr(opt, k, buf)
        cut = [r * n // size // line * line for r in range(size)] + [n]
        self.lo, self.hi = cut[rank], cut[rank + 1]
        self.sum_update = model.backend.apply_update_sum

    def mine(self):
        """This rank's gradient buffer."""
        return self.grads[self.rank]

    def sum_and_update(self, net, opt):
        """Wait for every rank's gradient, update this rank's slice, wait for every slice.

        The MPI barrier orders the ranks' plain stores to the mapping (its shared-memory
        transport fences around the messages it passes), as a window's Win_sync would.
        """
        self.node.Barrier()
        try:
            self.sum_update(net, opt, self.grads, self.lo, self.hi)
        finally:
            self.node.Barrier()

    def close(self):
        """Copy the shared parameters and state back into the model's own arrays."""
        model, opt = self.model, self.model.optimizer
        own = self.saved
        own[0][...] = model.net.params
        model.net.params = own[0]
        for k, buf in zip(self.names, own[1:], strict=True):
            buf[...] = getattr(opt, k)
            setattr(opt, k, buf)
        self.grads = None   # the mapping goes with the last view of it
        self.node.Barrier()
        self.node.Free()


def _shared_file(node, MPI, nbytes):
    """``nbytes`` of zeroed memory mapped by every rank of ``node`` (one machine), or None on
    every rank if any rank could not have it."""
    import mmap
    import tempfile

    path, mem = None, None
    if node.Get_rank() == 0:
        try:
            where = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, path = tempfile.mkstemp(prefix="fastnn-grads-", dir=where)
            try:
                os.ftruncate(fd, nbytes)
            finally:
                os.close(fd)
        except OSError:
            path = None
    path = node.bcast(path, root=0)
    if path is not None:
        try:
            with open(path, "r+b") as f:
                mem = mmap.mmap(f.fileno(), nbytes)
        except (OSError, ValueError):
            mem = None
    node.Barrier()   # every rank has it mapped (or failed): the name can go
    if node.Get_rank() == 0 and path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
    return mem if node.allreduce(int(mem is not None), op=MPI.MIN) else None
