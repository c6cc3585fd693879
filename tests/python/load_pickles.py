"""Load pickles our codec wrote (hex and expected rendering on each stdin
line) and check each renders as expected."""
import pickle
import sys

sys.path.insert(0, __file__.rsplit('/', 1)[0])
from make_pickle_fixtures import rendered  # noqa: E402

count = 0
for line in sys.stdin:
    data, expected = line.rstrip('\n').split('\t', 1)
    value = pickle.loads(bytes.fromhex(data))
    got = rendered(value)
    # Our codec writes tuples inside sets and dicts as they were; ranges and
    # OrderedDicts stay what they were too.
    if got != expected:
        print(f'MISMATCH: {expected} became {got}')
        sys.exit(1)
    count += 1
print(f'{count} loaded')
