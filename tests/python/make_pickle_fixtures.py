"""Pickles written by CPython itself, for the codec's tests.

Run with each interpreter (python3 is 3.11); writes one line per case to
stdout: protocol, the pickle in hex, and repr() of the value. The file
tests/fixtures/cpython/pickles.txt holds the output of 3.11, 3.12 and 3.13.
"""
import array
import collections
import pickle
import queue
import sys
import threading
from multiprocessing import managers
from multiprocessing.reduction import ForkingPickler

token = managers.Token('dict', ('127.0.0.1', 50000), '7f3a2b')
unix_token = managers.Token('Queue', '/tmp/x/manager.sock', '1')
VALUES = [
    None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**63 - 1,
    -2**63, 2**64, -2**100, 2**127 - 1, -2**127, 0.0, -1.5, 2.25, 1e100, float('inf'),
    '', 'hello', 'hall\xe5 v\xe4rlden', '\u043f\u0440\u0438\u0432\u0456\u0442', 'x' * 300,
    b'', b'\x00\xff', b'y' * 300, bytearray(b'ab'),
    [], [1, 2, 3], (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), {}, {'a': 1, 2: 'b'},
    {1, 2, 3}, frozenset({'x'}), [[1, [2, [3]]], {'k': (4, 5)}],
    slice(2, 5), slice(None, None, -1), slice(1, 10, 2), range(3), range(1, 10, 3),
    collections.OrderedDict([('a', 1), ('b', 2)]),
    KeyError('missing'), IndexError('list index out of range'), queue.Empty(),
    queue.Full(), threading.BrokenBarrierError(), ValueError(), RuntimeError('x', 1),
    StopIteration(),
    array.array('i', [1, -2, 3]), array.array('d', [0.5, 2.25]),
    token, unix_token,
    ('#RETURN', None), ('#RETURN', ('7f3a2b', ('get', 'set'))),
    (None, 'create', ('dict',), {'a': 1}), ('7f3a2b', '__setitem__', ('k', 42), {}),
]
shared = [1, 2]
VALUES.append([shared, shared, (shared,)])


def rendered(value):
    if isinstance(value, BaseException):
        return f'{type(value).__module__}.{type(value).__qualname__}{value.args!r}'
    if isinstance(value, managers.Token):
        return f'Token({value.typeid!r}, {value.address!r}, {value.id!r})'
    if isinstance(value, array.array):
        return f'array({value.typecode!r}, {value.tolist()!r})'
    if isinstance(value, collections.OrderedDict):
        return repr(dict(value))
    return repr(value)


def main():
    version = '%d.%d' % sys.version_info[:2]
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        for value in VALUES:
            if proto < 2 and isinstance(value, (managers.Token, slice, bytearray, range)):
                continue
            data = pickle.dumps(value, protocol=proto)
            print(f'{version}\t{proto}\t{data.hex()}\t{rendered(value)}')
    for value in VALUES:
        data = bytes(ForkingPickler.dumps(value))
        print(f'{version}\tforking\t{data.hex()}\t{rendered(value)}')


if __name__ == '__main__':
    main()
