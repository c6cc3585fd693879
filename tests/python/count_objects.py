"""Print a pickle-mode server's number_of_objects(). Usage: HOST PORT KEY."""
import sys
from multiprocessing.managers import SyncManager

m = SyncManager(address=(sys.argv[1], int(sys.argv[2])), authkey=sys.argv[3].encode())
m.connect()
print(m._number_of_objects())
