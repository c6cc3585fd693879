"""Create objects on a pickle-mode server, say 'ready', then wait to be
killed. Usage: hold_objects.py HOST PORT KEY."""
import sys
import time
from multiprocessing.managers import SyncManager

m = SyncManager(address=(sys.argv[1], int(sys.argv[2])), authkey=sys.argv[3].encode())
m.connect()
held = [m.dict({'k': 1}), m.list([1]), m.Lock()]
held[0]['k']  # a method-call connection too
print('ready', m._number_of_objects(), flush=True)
time.sleep(60)
