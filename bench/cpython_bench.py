#!/usr/bin/env python3
"""CPython's multiprocessing.managers on the workloads of bench/compare.

Stdlib only. Prints one JSON object {op: median} on stdout, in the units of
bench/compare (us/call, us/op, calls/s, MB/s, ms, MiB). Usage:

    python3 bench/cpython_bench.py [--quick] [--reps N] [--only op,op]

Every loop is bounded in count and in time; every manager is shut down even
when a workload fails.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from multiprocessing.managers import BaseManager, SyncManager


class MathsClass:
    def add(self, x, y):
        return x + y

    def mul(self, x, y):
        return x * y


class MathsManager(BaseManager):
    pass


MathsManager.register("Maths", MathsClass)

# Per-measurement time budget (seconds): a loop stops early past it and the
# figure is computed on the iterations actually run.
BUDGET = 20.0


def per_op_us(n, op, warmup=20):
    """Run op(i) for i in range(n) (bounded by BUDGET); microseconds per op."""
    for i in range(warmup):
        op(i)
    start = time.perf_counter()
    deadline = start + BUDGET
    done = 0
    for i in range(n):
        op(i)
        done += 1
        if (done & 63) == 0 and time.perf_counter() > deadline:
            break
    return (time.perf_counter() - start) / done * 1e6


def median_of(reps, measure):
    return statistics.median(measure() for _ in range(reps))


def vmrss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS for pid %d" % pid)


def maths_ops(cfg, results):
    for op, address in (("call.add", None), ("call.add.tcp", ("127.0.0.1", 0))):
        also = ("call.add.pipelined", "call.add.socket") if op == "call.add" else ()
        if not cfg.wants(op) and not any(cfg.wants(o) for o in also):
            continue
        manager = MathsManager(address=address)
        manager.start()
        try:
            maths = manager.Maths()
            value = median_of(cfg.reps, lambda: per_op_us(cfg.calls, lambda i: maths.add(i, 1)))
            results[op] = value
            if op == "call.add":
                # CPython has no pipelining: its figure is sequential calls/s.
                results["call.add.pipelined"] = 1e6 / value
                # Nor a path other than its socket.
                results["call.add.socket"] = value
            del maths
        finally:
            manager.shutdown()


def sync_ops(cfg, results):
    manager = SyncManager()
    manager.start()
    try:
        if cfg.wants("dict.set") or cfg.wants("dict.get"):
            d = manager.dict()

            def dset(i):
                d[i] = i

            results["dict.set"] = median_of(cfg.reps, lambda: per_op_us(cfg.calls, dset))
            d[7] = 7
            results["dict.get"] = median_of(cfg.reps, lambda: per_op_us(cfg.calls, lambda i: d[7]))
            del d
        if cfg.wants("list.append"):
            lst = manager.list()

            def measure():
                value = per_op_us(cfg.calls, lst.append)
                del lst[:]
                return value

            results["list.append"] = median_of(cfg.reps, measure)
            del lst
        if cfg.wants("queue.put") or cfg.wants("queue.get"):
            q = manager.Queue()
            puts, gets = [], []
            for _ in range(cfg.reps):
                # put n (+ the warm-up), then get them all back.
                puts.append(per_op_us(cfg.calls, q.put))
                gets.append(per_op_us(cfg.calls, lambda i: q.get()))
                while not q.empty():
                    q.get()
            results["queue.put"] = statistics.median(puts)
            results["queue.get"] = statistics.median(gets)
            del q
        if cfg.wants("lock.acquire_release"):
            lock = manager.Lock()

            def pair(_):
                lock.acquire()
                lock.release()

            results["lock.acquire_release"] = median_of(cfg.reps, lambda: per_op_us(cfg.calls, pair))
            del lock
        if cfg.wants("create.dict"):

            def create(_):
                d = manager.dict()
                del d

            results["create.dict"] = median_of(
                cfg.reps, lambda: per_op_us(cfg.creates, create, warmup=5)
            )
        if cfg.wants("value.1mib"):
            data = bytes(range(256)) * 4096  # 1 MiB
            v = manager.Value("c", b"")

            def set_get(_):
                v.set(data)
                got = v.get()
                assert len(got) == len(data)

            def measure():
                us = per_op_us(cfg.big, set_get, warmup=2)
                return 2 * len(data) / us  # bytes per us == MB/s

            results["value.1mib"] = median_of(cfg.reps, measure)
            del v
        if cfg.wants("concurrent.dict.set.16"):
            results["concurrent.dict.set.16"] = median_of(
                cfg.reps, lambda: concurrent_sets(manager, 16, cfg.per_thread)
            )
    finally:
        manager.shutdown()


def concurrent_sets(manager, threads, per_thread):
    """16 threads (each with its own connection, as CPython proxies are
    thread-local) set distinct keys of one dict; total calls/s."""
    d = manager.dict()
    ready = threading.Barrier(threads + 1)
    done = [0] * threads
    deadline = [0.0]

    def worker(t):
        d[-1 - t] = 0  # warm up: opens this thread's connection
        ready.wait()
        base = t * per_thread
        for i in range(per_thread):
            d[base + i] = i
            done[t] += 1
            if (i & 63) == 0 and time.perf_counter() > deadline[0]:
                break

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    deadline[0] = time.perf_counter() + BUDGET
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    del d
    return sum(done) / elapsed


def start_op(cfg, results):
    """Manager start to first call completed (create the proxy + one add)."""
    if not cfg.wants("start"):
        return
    times = []
    for _ in range(cfg.reps):
        manager = MathsManager()
        try:
            t0 = time.perf_counter()
            manager.start()
            maths = manager.Maths()
            assert maths.add(1, 2) == 3
            times.append((time.perf_counter() - t0) * 1e3)
            del maths
        finally:
            manager.shutdown()
    results["start"] = statistics.median(times)


def rss_op(cfg, results):
    """Server RSS holding a 1,000,000-entry int->int dict."""
    if not cfg.wants("rss.dict.1m"):
        return
    manager = SyncManager()
    manager.start()
    try:
        d = manager.dict()
        chunk = 50_000
        for k in range(0, 1_000_000, chunk):
            d.update({i: i for i in range(k, k + chunk)})
        assert len(d) == 1_000_000
        results["rss.dict.1m"] = vmrss_mib(manager._process.pid)
        del d
    finally:
        manager.shutdown()


class Config:
    def __init__(self, args):
        quick = args.quick
        self.reps = args.reps or (3 if quick else 5)
        self.calls = 1000 if quick else 5000
        self.creates = 50 if quick else 200
        self.big = 10 if quick else 40
        self.per_thread = 100 if quick else 400
        self.only = set(args.only.split(",")) if args.only else None

    def wants(self, op):
        return self.only is None or op in self.only


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--only", default="")
    cfg = Config(parser.parse_args())
    results = {}
    maths_ops(cfg, results)
    sync_ops(cfg, results)
    start_op(cfg, results)
    rss_op(cfg, results)
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
