"""The py.* rows of bench/compare (issue 10): one CPython client (this
interpreter, 3.11 in the bench) against a pickle-mode server, ours
(`--server ours --server-bin bench/target/release/py_server`) or CPython's
own SyncManager server process (`--server cpython`), stdlib only.

    python3 bench/cpython_interop.py --server ours|cpython [--server-bin B]
                                     [--quick] [--reps N] [--only op,op]

Prints one JSON object {op: median}: py.call.dict.set, py.call.dict.get
(us/op, `d[i] = i` and `d[7]` through a DictProxy; with the CPU of both
ends per call, `cpu_us:OP`, and of each, `client_cpu_us:OP` and
`server_cpu_us:OP`, from /proc schedstat) and py.rss.dict.1m
(MiB: the server's VmRSS holding a 1,000,000-entry int->int dict filled
by the same client). The server is stopped before exiting.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from multiprocessing.managers import SyncManager

KEY = b"bench interop"
BUDGET = 2.0  # seconds per measurement at most


def cpu_ns(pid):
    """CPU time of every thread of process `pid` so far (schedstat, ns)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total


def per_op_us(n, op, pid, warmup=20):
    """Wall, client CPU and server CPU microseconds per call of `op`."""
    for i in range(warmup):
        op(i)
    client0, server0 = time.process_time_ns(), cpu_ns(pid)
    start = time.perf_counter()
    deadline = start + BUDGET
    done = 0
    for i in range(n):
        op(i)
        done += 1
        if (done & 63) == 0 and time.perf_counter() > deadline:
            break
    wall = (time.perf_counter() - start) / done * 1e6
    client = (time.process_time_ns() - client0) / done / 1e3
    server = (cpu_ns(pid) - server0) / done / 1e3
    return wall, client, server


def measure(results, name, reps, calls, op, pid):
    """The medians of `reps` runs: wall us/op as `name`, client + server
    CPU as `cpu_us:name` (compare's CPU column), each end's CPU apart as
    `client_cpu_us:name` and `server_cpu_us:name`."""
    runs = [per_op_us(calls, op, pid) for _ in range(reps)]
    results[name] = statistics.median(r[0] for r in runs)
    results["cpu_us:" + name] = statistics.median(r[1] + r[2] for r in runs)
    results["client_cpu_us:" + name] = statistics.median(r[1] for r in runs)
    results["server_cpu_us:" + name] = statistics.median(r[2] for r in runs)


def vmrss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS for pid %d" % pid)


class Ours:
    """Our py_server, started here; killed on exit."""

    def __init__(self, binary):
        self.process = subprocess.Popen(
            [binary, KEY.decode()], stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "serving":
            self.stop()
            raise RuntimeError(f"py_server said {line!r}")
        host, port = line[1].rsplit(":", 1)
        self.manager = SyncManager(address=(host, int(port)), authkey=KEY)
        self.manager.connect()
        self.pid = self.process.pid

    def stop(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


class Cpython:
    """CPython's own SyncManager server process."""

    def __init__(self):
        self.manager = SyncManager(address=("127.0.0.1", 0), authkey=KEY)
        self.manager.start()
        self.pid = self.manager._process.pid

    def stop(self):
        self.manager.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["ours", "cpython"], required=True)
    parser.add_argument("--server-bin", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    calls = 1000 if args.quick else 5000
    only = set(args.only.split(",")) if args.only else None
    wants = lambda op: only is None or op in only  # noqa: E731

    server = Ours(args.server_bin) if args.server == "ours" else Cpython()
    results = {}
    try:
        m = server.manager
        if wants("py.call.dict.set") or wants("py.call.dict.get"):
            d = m.dict()

            def dset(i):
                d[i] = i

            measure(results, "py.call.dict.set", reps, calls, dset, server.pid)
            d[7] = 7
            measure(
                results, "py.call.dict.get", reps, calls, lambda i: d[7], server.pid
            )
            del d
        if wants("py.rss.dict.1m"):
            d = m.dict()
            chunk = 50_000
            for k in range(0, 1_000_000, chunk):
                d.update({i: i for i in range(k, k + chunk)})
            assert len(d) == 1_000_000
            results["py.rss.dict.1m"] = vmrss_mib(server.pid)
            del d
    finally:
        server.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
