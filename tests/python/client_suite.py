"""A CPython client exercising every built-in of a pickle-mode server.

Usage: client_suite.py HOST PORT KEY. Prints 'ok N' with the count of
checks on success; any failure raises (non-zero exit).
"""
import gc
import multiprocessing
import queue
import sys
import threading
from multiprocessing import managers
from multiprocessing.managers import SyncManager

host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
SyncManager.register('get_queue')
# Proxies rebuilt from replies (nested ones) authenticate with this.
multiprocessing.current_process().authkey = key
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


def raises(exc, f, *args, **kwds):
    try:
        f(*args, **kwds)
    except exc:
        check(True, exc)
        return
    raise AssertionError(f'{f} did not raise {exc}')


def child(d, q):
    d['child'] = 'was here'
    q.put('from child')


def main():
    m = SyncManager(address=(host, port), authkey=key)
    m.connect()
    base = m._number_of_objects()

    d = m.dict({'a': 1}, b=2)
    d['x'] = [1, (2, 3)]
    check(d['x'] == [1, [2, 3]], 'tuples come back as lists')
    check(d.get('nope', 5) == 5 and d.get('a') == 1, 'get')
    check(len(d) == 3 and 'a' in d and 'zz' not in d, 'len/contains')
    check(sorted(d.keys()) == ['a', 'b', 'x'], 'keys')
    check(d.items()[0] == ('a', 1), 'items are tuples')
    check(d.copy() == {'a': 1, 'b': 2, 'x': [1, [2, 3]]}, 'copy')
    try:
        d['missing']
    except KeyError as e:
        check(e.args == ('missing',), 'KeyError carries the key')
    check(d.setdefault('s', 9) == 9 and d.pop('s') == 9, 'setdefault/pop')
    check(d.pop('s', 'gone') == 'gone', 'pop default')
    d.update({'u': 1}, v=2)
    check(d['v'] == 2, 'update')
    check(list(iter(d))[:2] == ['a', 'b'], 'iter')
    del d['u']
    raises(KeyError, d.__delitem__, 'u')
    check(str(d).startswith('{'), 'repr')

    l = m.list(range(5))
    check(l[1:3] == [1, 2] and l[-1] == 4 and len(l) == 5, 'slices')
    l.append('z')
    l[0] = 10
    l[1:3] = ['p', 'q']
    check(l[:] == [10, 'p', 'q', 3, 4, 'z'], 'setitem')
    l.reverse()
    check(l.index('z') == 0 and l.count(3) == 1, 'index/count')
    raises(IndexError, l.__getitem__, 99)
    raises(ValueError, l.remove, 'nothing')
    check(l + [1] == l[:] + [1], 'add')
    l *= 2
    check(len(l) == 12, 'imul')
    check(l.pop() == 10, 'pop')

    q = m.Queue(2)
    q.put('hello')
    q.put_nowait('two')
    raises(queue.Full, q.put, 'x', timeout=0.05)
    check(q.full() and q.qsize() == 2, 'full/qsize')
    check(q.get(timeout=1) == 'hello' and q.get_nowait() == 'two', 'get')
    raises(queue.Empty, q.get, timeout=0.05)
    raises(queue.Empty, q.get_nowait)
    jq = m.JoinableQueue()
    jq.put(1)
    jq.get()
    jq.task_done()
    jq.join()
    raises(ValueError, jq.task_done)

    lock = m.Lock()
    check(lock.acquire() and not lock.acquire(False), 'lock')
    lock.release()
    raises(RuntimeError, lock.release)
    with lock:
        pass
    rlock = m.RLock()
    check(rlock.acquire() and rlock.acquire(), 'rlock twice')
    rlock.release()
    rlock.release()
    raises(RuntimeError, rlock.release)
    sem = m.Semaphore(2)
    check(sem.acquire() and sem.acquire() and not sem.acquire(False), 'semaphore')
    sem.release()
    sem.release()
    bsem = m.BoundedSemaphore(1)
    raises(ValueError, bsem.release)
    cond = m.Condition()
    with cond:
        check(cond.wait(0.05) is False, 'condition wait times out')
        cond.notify()
        cond.notify_all()
    ev = m.Event()
    check(not ev.wait(0.05), 'event unset')
    ev.set()
    check(ev.is_set() and ev.wait(0.05), 'event set')
    ev.clear()
    bar = m.Barrier(2, timeout=5)
    check(bar.parties == 2 and bar.n_waiting == 0 and not bar.broken, 'barrier attrs')
    results = []
    t = threading.Thread(target=lambda: results.append(bar.wait()))
    t.start()
    results.append(bar.wait())
    t.join()
    check(sorted(results) == [0, 1], 'barrier indexes')
    bar.abort()
    raises(threading.BrokenBarrierError, bar.wait)

    ns = m.Namespace(name='Bob')
    ns.job = 'Builder'
    check((ns.name, ns.job) == ('Bob', 'Builder'), 'namespace')
    del ns.job
    check(not hasattr(ns, 'job') and str(ns) == "Namespace(name='Bob')", 'namespace repr')
    v = m.Value('i', 5)
    v.value = 7
    check(v.value == 7 and v.get() == 7, 'value')
    a = m.Array('i', [1, 2, 3])
    a[0] = 5
    check(len(a) == 3 and list(a) == [5, 2, 3], 'array')

    inner = m.list([1, 2])
    d['inner'] = inner
    d['inner'].append(3)
    check(inner[:] == [1, 2, 3], 'nested proxy')
    outer = m.list([[88, 99], inner])
    check(isinstance(outer[0], list) and outer[-1][-1] == 3, 'plain list stays plain')
    nq = m.Queue()
    holder = m.dict()
    holder[0] = nq
    holder[0].put(456)
    check(holder[0].get() == 456, 'queue inside dict')

    gq = m.get_queue()
    gq.put(42)
    check(m.get_queue().get() == 42, 'get_queue is one queue')

    p = multiprocessing.Process(target=child, args=(d, gq))
    p.start()
    p.join(20)
    check(p.exitcode == 0 and d['child'] == 'was here', 'proxy in a child process')
    check(gq.get(timeout=5) == 'from child', 'child put on get_queue')

    raises(multiprocessing.AuthenticationError, SyncManager(
        address=(host, port), authkey=b'wrong key').connect)
    try:
        d['bad'] = threading.Lock  # a class: refused by the server's unpickler
    except Exception as e:
        check('forbidden' in str(e) or 'UnpicklingError' in type(e).__name__, 'forbidden global')
    else:
        raise AssertionError('a class was accepted')

    del d, l, q, jq, lock, rlock, sem, bsem, cond, ev, bar, ns, v, a, inner, outer, nq, holder, gq
    gc.collect()
    # get_queue's singleton stays; everything else is gone.
    check(m._number_of_objects() <= base + 1, f'objects left: {m._debug_info()}')
    print('ok', checks)


if __name__ == '__main__':
    main()
