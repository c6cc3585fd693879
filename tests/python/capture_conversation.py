"""Record a whole conversation between CPython's manager client and
CPython's manager server, as the client's side saw it: every frame sent
and received, handshakes included. Writes `send|recv<TAB>hex` lines after a
`key<TAB>hex` line to stdout. tests/fixtures/cpython/conversation-3.X.txt
are this script's output under each version.
"""
import multiprocessing
from multiprocessing import connection, managers

KEY = b'fixture key'
frames = []
original_send = connection.Connection._send_bytes
original_recv = connection.Connection._recv_bytes


def send(self, buf):
    frames.append(('send', bytes(buf)))
    return original_send(self, buf)


def recv(self, maxsize=None):
    buf = original_recv(self, maxsize)
    if buf is not None:
        frames.append(('recv', bytes(buf.getvalue())))
    return buf


def main():
    # Proxies rebuilt from a reply (nested ones) use the process's authkey.
    multiprocessing.current_process().authkey = KEY
    manager = managers.SyncManager(address=('127.0.0.1', 0), authkey=KEY)
    manager.start()
    connection.Connection._send_bytes = send
    connection.Connection._recv_bytes = recv
    try:
        d = manager.dict({'a': 1})
        d['b'] = [1, (2, 3)]
        d.get('b')
        d.items()
        try:
            d['missing']
        except KeyError:
            pass
        inner = manager.list(range(3))
        d['inner'] = inner
        d['inner']
        inner[0:2]
        q = manager.Queue()
        q.put('x')
        q.get(timeout=1)
        try:
            q.get_nowait()
        except Exception:
            pass
        lock = manager.Lock()
        with lock:
            pass
        ns = manager.Namespace(name='Bob')
        ns.name
        v = manager.Value('i', 5)
        v.value = 6
        a = manager.Array('i', [1, 2])
        a[0]
        list(iter(d))
        manager._number_of_objects()
        del d, inner, q, lock, ns, v, a
    finally:
        connection.Connection._send_bytes = original_send
        connection.Connection._recv_bytes = original_recv
        manager.shutdown()
    print(f'key\t{KEY.hex()}')
    for direction, data in frames:
        print(f'{direction}\t{data.hex()}')


if __name__ == '__main__':
    main()
