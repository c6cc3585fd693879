//! The runtime end to end with a hand-written `Shared` impl (what
//! `#[shared]` generates), on an in-process server thread.

use std::sync::Arc;

use manager_runtime::__private::*;
use manager_runtime::{BaseManager, Error, ManagerOptions, RemoteError};

#[derive(Default)]
struct Counter {
    value: i64,
}

const METHODS: &[MethodInfo] = &[
    MethodInfo {
        name: "add",
        fingerprint: fingerprint("add(i64)->i64"),
    },
    MethodInfo {
        name: "get",
        fingerprint: fingerprint("get()->i64"),
    },
    MethodInfo {
        name: "boom",
        fingerprint: fingerprint("boom()->()"),
    },
    MethodInfo {
        name: "slow",
        fingerprint: fingerprint("async slow(u64)->u64"),
    },
    MethodInfo {
        name: "child",
        fingerprint: fingerprint("child()->Counter"),
    },
];

impl Shared for Counter {
    const TYPEID: &'static str = "Counter";
    const METHODS: &'static [MethodInfo] = METHODS;
    type Proxy = CounterProxy;
    type AsyncProxy = CounterProxy;

    fn dispatch(
        this: Arc<ObjectLock<Self>>,
        method: usize,
        args: &[u8],
        cx: &CallContext,
    ) -> Outcome {
        match method {
            0 => match decode_args::<(i64,)>("add", args) {
                Ok((n,)) => run_mut(this, cx, move |c: &mut Counter| {
                    c.value += n;
                    Plain(c.value)
                }),
                Err(e) => Outcome::Ready(Err(e)),
            },
            1 => run_ref(this, cx, |c: &Counter| Plain(c.value)),
            2 => run_ref(this, cx, |_: &Counter| -> Plain<()> { panic!("kaboom") }),
            3 => match decode_args::<(u64,)>("slow", args) {
                Ok((ms,)) => {
                    let cx = cx.clone();
                    Outcome::pending(async move {
                        let _guard = this.read().await;
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        Reply::encode(Plain(ms), &cx)
                    })
                }
                Err(e) => Outcome::Ready(Err(e)),
            },
            4 => run_ref(this, cx, |c: &Counter| {
                Returned(Counter {
                    value: c.value * 10,
                })
            }),
            _ => Outcome::Ready(Err(RemoteError::BadRequest("no such method".into()))),
        }
    }
}

#[derive(Clone)]
struct CounterProxy {
    base: ProxyBase,
}

impl Proxy for CounterProxy {
    fn from_base(base: ProxyBase) -> Self {
        CounterProxy { base }
    }
    fn base(&self) -> &ProxyBase {
        &self.base
    }
}

impl CounterProxy {
    fn add(&self, n: i64) -> Result<i64> {
        self.base
            .call(MethodRef::at(0, "add", METHODS[0].fingerprint), &(n,))
    }
    fn get(&self) -> Result<i64> {
        self.base
            .call(MethodRef::at(1, "get", METHODS[1].fingerprint), &())
    }
    fn child(&self) -> Result<CounterProxy> {
        self.base.call_adopt::<_, AdoptProxy<CounterProxy>>(
            MethodRef::at(4, "child", METHODS[4].fingerprint),
            &(),
        )
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Counter>(
        "Counter",
        None,
        Some(Constructor::new(|(): ()| Counter::default())),
    );
    r.register::<Counter>(
        "Restricted",
        Some(&["get"]),
        Some(Constructor::new(|(): ()| Counter::default())),
    );
    r
}

fn started() -> BaseManager {
    let m = BaseManager::new(registry, ManagerOptions::new());
    m.start_in_thread().unwrap();
    m
}

#[test]
fn calls_refcounts_and_errors() {
    let m = started();
    let c: CounterProxy = m.create("Counter", &()).unwrap();
    assert_eq!(c.add(5).unwrap(), 5);
    assert_eq!(c.add(2).unwrap(), 7);
    let c2 = c.clone();
    drop(c);
    assert_eq!(c2.get().unwrap(), 7);
    assert_eq!(m.number_of_objects().unwrap(), 1);

    let child = c2.child().unwrap();
    assert_eq!(child.get().unwrap(), 70);
    assert_eq!(m.number_of_objects().unwrap(), 2);

    // panic becomes an error; the server goes on
    let err = c2
        .base
        .call::<_, ()>(MethodRef::at(2, "boom", METHODS[2].fingerprint), &())
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::Panic(ref m)) if m.contains("kaboom")),
        "{err}"
    );
    assert_eq!(c2.get().unwrap(), 7);

    // fingerprint mismatch
    let err = c2
        .base
        .call::<_, i64>(MethodRef::named("get", 1), &())
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::SignatureMismatch { .. })),
        "{err}"
    );
    // not exposed at all
    let err = c2
        .base
        .call::<_, i64>(MethodRef::named("nope", 1), &())
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::NotExposed { .. })),
        "{err}"
    );
    // restricted by the registry
    let r: CounterProxy = m.create("Restricted", &()).unwrap();
    assert_eq!(r.get().unwrap(), 0);
    let err = r.add(1).unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::NotExposed { .. })),
        "{err}"
    );
    // bad arguments
    let err = c2
        .base
        .call::<_, i64>(MethodRef::at(0, "add", METHODS[0].fingerprint), &("text",))
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::BadArguments { .. })),
        "{err}"
    );

    drop((c2, child, r));
    assert_eq!(m.number_of_objects().unwrap(), 0);
    m.shutdown().unwrap();
    m.shutdown().unwrap();
}

#[test]
fn async_calls_in_flight_on_one_connection() {
    let m = started();
    let c: CounterProxy = m.create("Counter", &()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = std::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let c = c.clone();
            calls.spawn(async move {
                c.base
                    .call_async::<_, u64>(
                        MethodRef::at(3, "slow", METHODS[3].fingerprint),
                        &(200u64,),
                    )
                    .await
            });
        }
        while let Some(result) = calls.join_next().await {
            assert_eq!(result.unwrap().unwrap(), 200);
        }
        // 50 calls of 200 ms each, concurrently: far less than 50 * 200 ms
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let n: i64 = c
            .base
            .call_async(MethodRef::at(0, "add", METHODS[0].fingerprint), &(3i64,))
            .await
            .unwrap();
        assert_eq!(n, 3);
    });
    assert_eq!(c.get().unwrap(), 3);
}

#[test]
fn wrong_key_is_refused_and_server_keeps_serving() {
    let m = BaseManager::new(registry, ManagerOptions::new().authkey(b"right"));
    m.start_in_thread().unwrap();
    let wrong = BaseManager::new(
        registry,
        ManagerOptions::new()
            .address(m.address().unwrap())
            .authkey(b"wrong"),
    );
    let err = wrong.connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    let c: CounterProxy = m.create("Counter", &()).unwrap();
    assert_eq!(c.add(1).unwrap(), 1);
}

#[test]
fn server_gone_after_shutdown() {
    let m = started();
    let c: CounterProxy = m.create("Counter", &()).unwrap();
    let other = BaseManager::new(
        registry,
        ManagerOptions::new().address(m.address().unwrap()),
    );
    other.connect().unwrap();
    let c2: CounterProxy = other.create("Counter", &()).unwrap();
    m.shutdown().unwrap();
    let err = c2.get().unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err}");
    let err = c2.get().unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err}");
    drop(c);
}
