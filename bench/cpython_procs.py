"""CPython 3.11's multiprocessing on the process workloads of bench/compare
(issue 8; stdlib only), the counterpart of bench/src/bin/procs.rs.

    python3 bench/cpython_procs.py [--quick] [--reps N] [--only op,op]

Prints one JSON object {op: median} in the units of bench/compare. Every
child is joined before the next workload. The start method is fork
(Linux's default in 3.11), except for process.start_join.spawn.
"""

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time


def noop():
    pass


def echo(conn, other):
    other.close()  # the parent's end, inherited by fork: EOF needs it closed
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass


def echo_bytes(conn, other):
    other.close()
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def produce(go, queue, n):
    go.recv()
    for i in range(n):
        queue.put(i)


def increment(go, counter, n):
    go.wait()
    for _ in range(n):
        with counter.get_lock():
            counter.value += 1


def square(x):
    return x * x


def pool_rows(ctx, cfg, results):
    with ctx.Pool(2) as pool:
        if cfg.wants("pool.map.small") or cfg.wants("dpool.map.small"):
            def small():
                begun = time.perf_counter()
                pool.map(square, range(cfg.map_items))
                return cfg.map_items / (time.perf_counter() - begun)
            results["pool.map.small"] = median_of(cfg.reps, small)
        if cfg.wants("pool.map.chunk1") or cfg.wants("dpool.map.chunk1"):
            def chunk1():
                begun = time.perf_counter()
                pool.map(square, range(cfg.chunk1_items), chunksize=1)
                return cfg.chunk1_items / (time.perf_counter() - begun)
            results["pool.map.chunk1"] = median_of(cfg.reps, chunk1)
        if cfg.wants("pool.apply_async.roundtrip"):
            def roundtrip():
                begun = time.perf_counter()
                for i in range(cfg.applies):
                    pool.apply_async(square, (i,)).get()
                return (time.perf_counter() - begun) * 1e6 / cfg.applies
            results["pool.apply_async.roundtrip"] = median_of(cfg.reps, roundtrip)
        if cfg.wants("pool.tiny.1000") or cfg.wants("dpool.tiny.1000"):
            def tiny():
                begun = time.perf_counter()
                pool.map(square, range(1000))
                return (time.perf_counter() - begun) * 1e3
            results["pool.tiny.1000"] = median_of(cfg.reps, tiny)
    # The distributed pool's rows stand beside CPython's local Pool (CPython
    # has no distributed one): the same figures.
    for op in ("map.small", "map.chunk1", "tiny.1000"):
        if cfg.wants("dpool." + op) and "pool." + op in results:
            results["dpool." + op] = results["pool." + op]
    if cfg.wants("pool.start"):
        def start():
            begun = time.perf_counter()
            for _ in range(cfg.pool_starts):
                with ctx.Pool(2) as pool:
                    assert pool.apply(square, (3,)) == 9
            return (time.perf_counter() - begun) * 1e3 / cfg.pool_starts
        results["pool.start"] = median_of(cfg.reps, start)


def median_of(reps, measure):
    return statistics.median(measure() for _ in range(max(reps, 1)))


def start_join(ctx, n):
    begun = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        assert p.exitcode == 0
    return (time.perf_counter() - begun) * 1e3 / n


def pipe_roundtrip(ctx, cfg):
    ours, theirs = ctx.Pipe()
    p = ctx.Process(target=echo, args=(theirs, ours))
    p.start()
    theirs.close()

    def measure():
        begun = time.perf_counter()
        for i in range(cfg.pings):
            ours.send(6148914691236517205 + i)
            ours.recv()
        return (time.perf_counter() - begun) * 1e6 / cfg.pings

    figure = median_of(cfg.reps, measure)
    ours.close()
    p.join()
    return figure


def pipe_1mib(ctx, cfg):
    ours, theirs = ctx.Pipe()
    p = ctx.Process(target=echo_bytes, args=(theirs, ours))
    p.start()
    theirs.close()
    message = b"\x07" * (1 << 20)

    def measure():
        begun = time.perf_counter()
        for _ in range(cfg.big):
            ours.send_bytes(message)
            ours.recv_bytes()
        return 2 * (1 << 20) * cfg.big / (time.perf_counter() - begun) / 1e6

    figure = median_of(cfg.reps, measure)
    ours.close()
    p.join()
    return figure


def transfer(ctx, cfg):
    def measure():
        go_rx, go_tx = ctx.Pipe(duplex=False)
        queue = ctx.Queue()
        p = ctx.Process(target=produce, args=(go_rx, queue, cfg.items))
        p.start()
        begun = time.perf_counter()
        go_tx.send(1)
        for _ in range(cfg.items):
            last = queue.get()
        rate = cfg.items / (time.perf_counter() - begun)
        assert last == cfg.items - 1
        p.join()
        return rate

    return median_of(cfg.reps, measure)


def locked_increments(ctx, cfg):
    per = cfg.increments // 2

    def measure():
        go = ctx.Event()
        counter = ctx.Value("q", 0)
        workers = [ctx.Process(target=increment, args=(go, counter, per)) for _ in range(2)]
        for w in workers:
            w.start()
        begun = time.perf_counter()
        go.set()
        for w in workers:
            w.join()
        rate = 2 * per / (time.perf_counter() - begun)
        assert counter.value == 2 * per
        return rate

    return median_of(cfg.reps, measure)


class Config:
    def __init__(self, args):
        quick = args.quick
        self.reps = args.reps or (3 if quick else 5)
        self.starts = 20 if quick else 100
        self.spawns = 3 if quick else 10
        self.pings = 5_000 if quick else 20_000
        self.big = 30 if quick else 100
        self.items = 50_000 if quick else 200_000
        self.increments = 100_000 if quick else 400_000
        self.map_items = 100_000
        self.chunk1_items = 10_000
        self.applies = 500 if quick else 2_000
        self.pool_starts = 5 if quick else 10
        self.only = set(args.only.split(",")) if args.only else None

    def wants(self, op):
        return self.only is None or op in self.only


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--only", default="")
    cfg = Config(parser.parse_args())
    fork = mp.get_context("fork")
    results = {}
    if cfg.wants("process.start_join"):
        results["process.start_join"] = median_of(cfg.reps, lambda: start_join(fork, cfg.starts))
    if cfg.wants("process.start_join.spawn"):
        spawn = mp.get_context("spawn")
        results["process.start_join.spawn"] = median_of(cfg.reps, lambda: start_join(spawn, cfg.spawns))
    if cfg.wants("pipe.roundtrip"):
        results["pipe.roundtrip"] = pipe_roundtrip(fork, cfg)
    if cfg.wants("pipe.1mib"):
        results["pipe.1mib"] = pipe_1mib(fork, cfg)
    if cfg.wants("mpqueue.transfer"):
        results["mpqueue.transfer"] = transfer(fork, cfg)
    if cfg.wants("shm.value.locked_increment"):
        results["shm.value.locked_increment"] = locked_increments(fork, cfg)
    if any(cfg.wants(op) for op in ("pool.map.small", "pool.map.chunk1", "pool.apply_async.roundtrip", "pool.start",
                                     "pool.tiny.1000", "dpool.map.small", "dpool.map.chunk1", "dpool.tiny.1000")):
        pool_rows(fork, cfg, results)
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
