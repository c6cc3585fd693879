"""A CPython manager server for our pickle-mode client.

Usage: cpython_server.py HOST PORT KEY [--manager]

Serves SyncManager's built-ins plus `get_queue` (one queue.Queue) and
`get_dict` (one dict, with DictProxy, holding 'python': 'hello from
python'), and `get_lists` (a list of two lists, to return nested
proxies through DictProxy). Prints 'ready HOST PORT' (the bound address:
PORT 0 picks one), then serves until stdin closes or the process is
killed. With --manager, the server is a process started by Python
(`Manager.start()`), not `serve_forever()` in this one.
"""

import queue
import sys
import threading
from multiprocessing.managers import DictProxy, SyncManager

HOST, PORT, KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
STARTED = "--manager" in sys.argv[4:]

shared_queue = queue.Queue()
shared_dict = {"python": "hello from python"}


def get_queue():
    return shared_queue


def get_dict():
    return shared_dict


class Manager(SyncManager):
    pass


Manager.register("get_queue", callable=get_queue)
Manager.register("get_dict", callable=get_dict, proxytype=DictProxy)


def watch_stdin(stop):
    sys.stdin.read()
    stop()


if STARTED:
    m = Manager(address=(HOST, PORT), authkey=KEY)
    m.start()
    print("ready", m.address[0], m.address[1], flush=True)
    watch_stdin(lambda: None)
    m.shutdown()
else:
    server = Manager(address=(HOST, PORT), authkey=KEY).get_server()
    print("ready", server.address[0], server.address[1], flush=True)
    threading.Thread(
        target=watch_stdin, args=(lambda: server.stop_event.set(),), daemon=True
    ).start()
    server.serve_forever()
