"""A CPython client calling a user's #[shared] type (`Ledger`, defined in
tests/python_user_types.rs) on a pickle-mode server.

Usage: user_types.py HOST PORT KEY. Prints 'ok N' with the count of checks
on success; any failure raises (non-zero exit).
"""

import sys
from multiprocessing.managers import BaseManager

HOST, PORT, KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
VERBOSE = "-v" in sys.argv[4:]


class Manager(BaseManager):
    pass


Manager.register("Ledger")

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def raises(cls, text, call, *args):
    try:
        call(*args)
    except cls as e:
        check(text in str(e), f"{cls.__name__} carries {text!r}: {e!r}")
        return e
    raise AssertionError(f"{call} did not raise {cls.__name__}")


m = Manager(address=(HOST, PORT), authkey=KEY)
m.connect()

ledger = m.Ledger(100)  # the constructor's argument, an i64
check(type(ledger).__name__.startswith("AutoProxy"), "an AutoProxy")
exposed = set(ledger._exposed_)
check({"deposit", "withdraw", "entries", "shift", "rate", "owner"} <= exposed, exposed)

# Positional arguments converted into the method's types (i64, String).
check(ledger.deposit(25, "salary") == 125, "deposit returns the balance")
check(ledger.deposit(-5, "fee") == 120, "a negative i64")
# A Python dict becomes a struct argument, the struct comes back a dict.
check(ledger.shift({"x": 1, "y": 2.5}, 3) == {"x": 4, "y": 5.5}, "struct in, struct out")
# Tuples/lists become a Vec of pairs; it comes back as a list of lists.
check(ledger.entries() == [[100, "opening"], [25, "salary"], [-5, "fee"]], ledger.entries())
# Option: None and a float.
check(ledger.rate("none") is None, "None for Option::None")
check(ledger.rate("usual") == 0.25, "a float for Some")
# str and bytes.
check(ledger.owner(b"\x00\xff") == "owner of 2 bytes", "bytes argument")

# Typed errors: a variant named after a Python exception is that exception,
# with the error's text; another variant is a RuntimeError carrying it.
raises(ValueError, "cannot withdraw 0", ledger.withdraw, 0)
e = raises(RuntimeError, "Overdrawn", ledger.withdraw, 1000)
check("880" in str(e), f"the payload in the text: {e}")
check(ledger.withdraw(20) == 100, "a successful withdrawal")

# Arguments that do not fit the method's types are refused, and the
# object is unchanged.
for bad in [("ten", "x"), (1,), (1, "x", 3), (2**70, "x")]:
    try:
        ledger.deposit(*bad)
    except Exception as e:
        check(isinstance(e, TypeError) and "deposit()" in str(e), f"{bad}: {e!r}")
        if VERBOSE:
            print(f"deposit{bad}: {e!r}", file=sys.stderr)
    else:
        raise AssertionError(f"deposit{bad} was accepted")
check(ledger.deposit(0, "check") == 100, "the balance is unchanged")
# A u32 parameter refuses a negative int.
try:
    ledger.withdraw(-1)
except TypeError as e:
    check("withdraw()" in str(e), repr(e))
else:
    raise AssertionError("withdraw(-1) was accepted")

# A method outside the exposed set is refused as CPython's server refuses
# it: an AttributeError in the server, a RemoteError with its traceback here.
from multiprocessing.managers import RemoteError
try:
    ledger._callmethod("secret")
except RemoteError as e:
    check("AttributeError" in str(e) and "secret" in str(e), repr(e))
else:
    raise AssertionError("secret() was callable")

del ledger
print("ok", checks)
