//! Managers and sessions of the integration tests: servers started in a
//! thread of the test process, other client sessions of them, a worker
//! process's connection to its parent's manager, proxies rebuilt from
//! tokens, and the counts (objects, threads) the tests check.

use std::ops::Deref;
use std::process::Child;
use std::time::{Duration, Instant};

use managers::proxy::{ProxyBase, Token};
use managers::sync::SyncManager;
use managers::{BaseManager, ManagerOptions, Proxy};

use super::worker::{spawn_worker, tokens_arg, tokens_from_arg, worker_context, WorkerContext};

/// How long a worker process may take before the test kills it.
pub const WORKER_LIMIT: Duration = Duration::from_secs(60);

/// `manager`, its server started in a thread of this process.
pub fn started_in_thread<M: Deref<Target = BaseManager>>(manager: M) -> M {
    manager.start_in_thread().expect("start server thread");
    manager
}

/// A `SyncManager` whose server runs in a thread of this process; with
/// `MANAGERS_TEST_BACKEND=redis`, a gateway keeping the built-ins' state
/// in a Redis of this test process (the conformance tests' second pass,
/// issue 20).
pub fn started_sync_manager() -> SyncManager {
    let options = if redis_pass() {
        ManagerOptions::new().redis(super::redis::process_redis_url())
    } else {
        ManagerOptions::new()
    };
    started_in_thread(SyncManager::with_options(options))
}

/// Whether this is the pass against the Redis backend
/// (`MANAGERS_TEST_BACKEND=redis`).
pub fn redis_pass() -> bool {
    std::env::var("MANAGERS_TEST_BACKEND").is_ok_and(|b| b == "redis")
}

/// In the Redis pass, a test of what the Redis backend does not keep
/// (`why`) says so and is left out: `true`, return at once.
pub fn not_in_redis_pass(why: &str) -> bool {
    if redis_pass() {
        println!("not in the Redis pass: {why}");
    }
    redis_pass()
}

/// Options that reach `server`'s server as another client, with this
/// process's default authkey.
pub fn client_options(server: &BaseManager) -> ManagerOptions {
    ManagerOptions::new()
        .address(server.address().unwrap())
        .authkey(managers::default_authkey())
}

/// Another client session of `server`'s server, connected.
pub fn connect_session(server: &BaseManager) -> SyncManager {
    let session = SyncManager::with_options(client_options(server));
    session.connect().unwrap();
    session
}

/// Start `test_name` (an `#[ignore]`d worker test of this binary) in a child
/// process, as a worker of `server`'s manager, handing it `tokens`.
pub fn spawn_with_tokens(server: &BaseManager, test_name: &str, tokens: &[&Token]) -> Child {
    spawn_worker(
        test_name,
        &server.address().unwrap(),
        managers::default_authkey(),
        &tokens_arg(tokens),
    )
}

/// In a worker: a manager made by `make` (`SomeManager::with_options`),
/// connected to the parent's manager.
pub fn connect_worker_as<M: Deref<Target = BaseManager>>(
    ctx: &WorkerContext,
    make: impl FnOnce(ManagerOptions) -> M,
) -> M {
    let manager = make(
        ManagerOptions::new()
            .address(ctx.address.clone())
            .authkey(&ctx.authkey),
    );
    manager.connect().expect("connect to the parent's manager");
    manager
}

/// In a worker: a `SyncManager` connected to the parent's manager.
pub fn connect_worker(ctx: &WorkerContext) -> SyncManager {
    connect_worker_as(ctx, SyncManager::with_options)
}

/// In a worker: the tokens the parent passed.
pub fn passed_tokens(ctx: &WorkerContext) -> Vec<Token> {
    tokens_from_arg(&ctx.address, &ctx.argument)
}

/// In a worker: the connection to the parent's manager, and the tokens the
/// parent passed.
pub fn worker_session() -> (SyncManager, Vec<Token>) {
    let ctx = worker_context();
    (connect_worker(&ctx), passed_tokens(&ctx))
}

/// In a worker: the connection to the parent's manager, and the objects the
/// parent passed, each adopted with [`ProxyBase::from_token`].
pub fn worker_objects() -> (SyncManager, Vec<ProxyBase>) {
    let (manager, tokens) = worker_session();
    let objects = tokens.iter().map(|token| adopt(&manager, token)).collect();
    (manager, objects)
}

/// `token`'s object through `session`, as a [`ProxyBase`]
/// ([`ProxyBase::from_token`]: a reference of its own if the session holds
/// none yet).
pub fn adopt(session: &BaseManager, token: &Token) -> ProxyBase {
    ProxyBase::from_token(&session.client().expect("client"), token.clone()).expect("adopt token")
}

/// `token`'s object through `session`, as a proxy of type `P` (see
/// [`adopt`]).
pub fn rebuild<P: Proxy>(session: &BaseManager, token: &Token) -> P {
    P::from_base(adopt(session, token))
}

/// Assert the server of `manager` holds no objects.
pub fn assert_no_objects(manager: &BaseManager) {
    assert_eq!(
        manager.number_of_objects().unwrap(),
        0,
        "{:?}",
        manager.debug_info()
    );
}

/// Objects on `manager`'s server once it holds `expected` of them, or
/// whatever it holds after `within`: releases sent by other sessions travel
/// without waiting for an answer, so the count settles a little later.
pub fn settled_object_count(manager: &BaseManager, expected: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let count = manager.number_of_objects().unwrap();
        if count == expected || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This process's thread count (`/proc/self/status`, Linux). With the
/// server in a thread of this process, it bounds the server's.
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

/// A single-threaded tokio runtime for async proxies.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
