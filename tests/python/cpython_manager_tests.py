"""CPython's own manager tests, run against a Rust pickle-mode server.

Usage: cpython_manager_tests.py HOST PORT KEY [--quick] [TEST_NAME_PREFIX ...]

Loads `test._test_multiprocessing` of the interpreter running this script,
builds its `WithManagerTest*` classes (the `manager` flavour of every mixin
test, start method `fork`) and `TestSyncManagerTypes`, and makes every
`Manager()` they ask for a `SyncManager` *connected* to the server at
HOST:PORT instead of a CPython server process it starts. Nothing else of
the tests is changed.

Tests that exercise CPython's own server machinery rather than a server
they talk to (they start a Python server of their own with Python-defined
types, or use the server-side `Pool`) are not run against ours: they are
reported as `excluded` with the reason, never counted as passing.

The last line printed is a JSON summary:
  {"python": "3.11.7", "run": N, "passed": N, "failed": N, "errors": N,
   "skipped": N, "excluded": N, "refused": N,
   "outcomes": {test_id: outcome, ...}, "reasons": {test_id: text, ...},
   "seconds": {test_id: duration, ...}}
`refused` counts tests that ask the server to run client code (a Python
callable): ours refuses that by design, and the test checks the refusal
is the one expected.
The exit status is 0 when every test run passed (or was skipped by the
test itself), 1 otherwise.
"""

import json
import multiprocessing
import multiprocessing.managers
import sys
import time
import unittest

HOST, PORT, KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
QUICK = "--quick" in sys.argv[4:]
PREFIXES = [arg for arg in sys.argv[4:] if arg != "--quick"]

# Left out by --quick (the bounded form CI runs): the tests that take over
# a second each, mostly sleeping on purpose (barrier and condition timing,
# queue timeouts). Every family still runs in the quick form.
SLOW = {
    "WithManagerTestBarrier.test_abort",
    "WithManagerTestBarrier.test_abort_and_reset",
    "WithManagerTestBarrier.test_barrier",
    "WithManagerTestBarrier.test_barrier_10",
    "WithManagerTestBarrier.test_default_timeout",
    "WithManagerTestBarrier.test_reset",
    "WithManagerTestBarrier.test_timeout",
    "WithManagerTestBarrier.test_wait_return",
    "WithManagerTestCondition.test_notify",
    "WithManagerTestCondition.test_notify_all",
    "WithManagerTestCondition.test_notify_n",
    "WithManagerTestCondition.test_wait_result",
    "WithManagerTestCondition.test_waitfor_timeout",
    "WithManagerTestContainers.test_list_proxy_in_list",
    "WithManagerTestQueue.test_get",
    "WithManagerTestQueue.test_put",
}

# CPython rebuilds proxies nested in replies (and proxies it unpickles in a
# child) with `current_process().authkey`, not the manager's key: the
# tests' own Manager() works because the manager process is a child sharing
# that key. Ours is not a child, so the key is set here (children forked
# by the tests inherit it).
multiprocessing.current_process().authkey = KEY


class RustManager(multiprocessing.managers.SyncManager):
    """A SyncManager connected to the Rust server; start/shutdown/join do
    what the tests need of a manager they own, without a Python server."""

    def __init__(self, *args, **kwargs):
        super().__init__(address=(HOST, PORT), authkey=KEY)
        self.connect()

    def start(self, *args, **kwargs):
        pass

    def shutdown(self):
        pass

    def join(self, timeout=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


multiprocessing.Manager = RustManager

import test._test_multiprocessing as tm  # noqa: E402  (after the patch)

# Tests that do not talk to a server they were given.
EXCLUDED_CLASSES = {
    "WithManagerTestMyManager":
        "starts a CPython server of its own serving Python-defined classes "
        "(tests CPython's server, not one it connects to)",
    "WithManagerTestRemoteManager":
        "starts a CPython server of its own with a random key "
        "(tests CPython's server, not one it connects to)",
}
EXCLUDED_PREFIXES = {
    "WithManagerTestPool":
        "manager.Pool() runs a multiprocessing.Pool of Python processes "
        "inside the server executing pickled Python functions: a CPython "
        "server feature by nature (our server never runs client code)",
}
EXCLUDED_TESTS = {
    "TestSyncManagerTypes.test_pool":
        "manager.Pool(): a pool of Python processes inside the server",
    "WithManagerTestManagerRestart.test_rapid_restart":
        "starts and restarts a CPython server of its own "
        "(tests CPython's server, not one it connects to)",
}
# Tests that are run but ask the server to do what ours refuses by design:
# their failure is counted as `refused`, with the error checked.
REFUSED = {
    "WithManagerTestBarrier.test_action": (
        "Barrier(action=<a Python callable>): the server would unpickle "
        "and call client code; ours refuses the global "
        "(pickle.UnpicklingError)",
        "UnpicklingError: global 'test._test_multiprocessing.AppendTrue' "
        "is forbidden"),
}
# Plain unittest classes of the module that use Manager(): run as they are
# (the ones an interpreter's module does not have are left out).
PLAIN_CLASSES = ("TestManagerExceptions", "TestInitializers")

namespace = {"__name__": "cpython_manager_tests"}
tm.install_tests_in_module_dict(namespace, "fork", only_type="manager")


class TestSyncManagerTypes(tm.TestSyncManagerTypes):
    manager_class = RustManager


TestSyncManagerTypes.__module__ = "cpython_manager_tests"
namespace["TestSyncManagerTypes"] = TestSyncManagerTypes
for _name in PLAIN_CLASSES:
    if hasattr(tm, _name):
        namespace[_name] = getattr(tm, _name)


def excluded_reason(test_id):
    cls, _, name = test_id.partition(".")
    if cls in EXCLUDED_CLASSES:
        return EXCLUDED_CLASSES[cls]
    for prefix, reason in EXCLUDED_PREFIXES.items():
        if cls.startswith(prefix):
            return reason
    return EXCLUDED_TESTS.get(test_id)


def short_id(test):
    cls = type(test).__name__
    return f"{cls}.{test._testMethodName}"


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}
        self.reasons = {}
        self.seconds = {}
        self._started = None

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        if hasattr(test, "_testMethodName") and self._started is not None:
            self.seconds[short_id(test)] = round(time.monotonic() - self._started, 3)

    def _note(self, test, outcome, reason=None):
        if not hasattr(test, "_testMethodName"):  # a class/module fixture
            key = str(test)
        else:
            key = short_id(test)
        refused = REFUSED.get(key)
        if refused and outcome in ("failed", "error"):
            if reason and refused[1] in reason:
                outcome, reason = "refused", refused[0]
            else:
                reason = "not refused as expected: " + (reason or "")
        self.outcomes[key] = outcome
        if reason:
            self.reasons[key] = reason

    def addSuccess(self, test):
        super().addSuccess(test)
        self._note(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._note(test, "failed", self._exc_info_to_string(err, test)[-2000:])

    def addError(self, test, err):
        super().addError(test, err)
        self._note(test, "error", self._exc_info_to_string(err, test)[-2000:])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._note(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._note(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._note(test, "failed", "unexpected success")


def main():
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    excluded = {}
    for name in sorted(namespace):
        cls = namespace[name]
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
            continue
        if not (name.startswith("WithManagerTest")
                or name == "TestSyncManagerTypes" or name in PLAIN_CLASSES):
            continue
        for test in loader.loadTestsFromTestCase(cls):
            test_id = short_id(test)
            if PREFIXES and not any(test_id.startswith(p) for p in PREFIXES):
                continue
            if QUICK and test_id in SLOW:
                continue
            reason = excluded_reason(test_id)
            if reason:
                excluded[test_id] = reason
            else:
                suite.addTest(test)

    # install_tests_in_module_dict put setUpModule/tearDownModule in the
    # namespace: run them around the suite as unittest would.
    if "setUpModule" in namespace:
        namespace["setUpModule"]()
    try:
        runner = unittest.TextTestRunner(
            stream=sys.stderr, verbosity=2, resultclass=Recorder)
        result = runner.run(suite)
    finally:
        if "tearDownModule" in namespace:
            try:
                namespace["tearDownModule"]()
            except Exception as e:  # report, the figures still count
                print(f"tearDownModule: {e!r}", file=sys.stderr)

    outcomes = dict(result.outcomes)
    reasons = dict(result.reasons)
    for test_id, reason in excluded.items():
        outcomes[test_id] = "excluded"
        reasons[test_id] = reason
    counts = {k: 0 for k in
              ("passed", "failed", "error", "skipped", "excluded", "refused")}
    for outcome in outcomes.values():
        counts[outcome] += 1
    summary = {
        "python": sys.version.split()[0],
        "quick": QUICK,
        "run": result.testsRun,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "excluded": counts["excluded"],
        "refused": counts["refused"],
        "seconds": result.seconds,
        "outcomes": outcomes,
        "reasons": reasons,
    }
    sys.stdout.flush()
    print(json.dumps(summary, sort_keys=True))
    ok = counts["failed"] == 0 and counts["error"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
