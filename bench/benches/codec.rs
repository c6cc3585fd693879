//! Micro-benchmarks of the per-call CPU work, to see where a call's time
//! goes apart from the sockets: the wire codec on both sides, `Value`
//! conversion of the built-ins, and a dispatch of `MathsClass::add` through
//! `Shared::dispatch`.
//!
//! `cargo bench --manifest-path bench/Cargo.toml` (or `-- --quick`).
//!
//! `Shared::dispatch` needs a `CallContext`, which only a server builds. We
//! take a real one: an in-process server (`start_in_thread`) runs a
//! `Probe::capture` call that clones `CallContext::current()` out.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use managers::server::{CallContext, ObjectLock, Shared};
use managers::value::{from_value, to_value, Value};
use managers::wire::{self, Request, Response};
use managers::{manager, shared};
use managers_bench::{add_method, call_add_frame, reply_add_frame, MathsClass};

static CAPTURED: Mutex<Option<CallContext>> = Mutex::new(None);

/// Hands out the context of a real server call.
#[derive(Default)]
pub struct Probe;

#[shared]
impl Probe {
    /// Store the current call's context.
    pub fn capture(&self) -> bool {
        *CAPTURED.lock().unwrap() = CallContext::current();
        CAPTURED.lock().unwrap().is_some()
    }
}

manager! {
    /// Serves the probe.
    pub struct ProbeManager {
        Probe: Probe,
    }
}

fn codec(c: &mut Criterion) {
    let (index, fingerprint) = add_method();
    let mut g = c.benchmark_group("codec");

    // Client: build the call frame of maths.add(x, 1) in a reused buffer,
    // as Inner::roundtrip does.
    let mut buf = Vec::with_capacity(256);
    g.bench_function("client.encode_call", |b| {
        b.iter(|| {
            wire::begin_frame(
                &mut buf,
                &Request::Call {
                    id: black_box(12_345),
                    object: black_box(1),
                    method: black_box("add"),
                    index: Some(index as u32),
                    fingerprint,
                },
            )
            .unwrap();
            wire::append(&mut buf, &(black_box(12_345i64), 1i64)).unwrap();
            wire::finish_frame(&mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
            black_box(buf.len())
        })
    });

    // Server: decode the request header and the argument tuple.
    let request = call_add_frame(12_345, 1, 12_345, 1);
    g.bench_function("server.decode_call", |b| {
        b.iter(|| {
            let (req, payload): (Request, &[u8]) =
                wire::decode_header(black_box(&request[wire::PREFIX..])).unwrap();
            let args: (i64, i64) = wire::decode(payload).unwrap();
            black_box((req, args))
        })
    });

    // Server: the reply frame (result encoded on its own, then copied
    // behind the header, as server::reply does).
    let mut out = Vec::with_capacity(256);
    g.bench_function("server.encode_reply", |b| {
        b.iter(|| {
            let payload = wire::encode(&black_box(12_346i64)).unwrap();
            wire::begin_frame(
                &mut out,
                &Response {
                    id: black_box(12_345),
                    result: Ok(()),
                },
            )
            .unwrap();
            out.extend_from_slice(&payload);
            wire::finish_frame(&mut out, wire::DEFAULT_MAX_FRAME).unwrap();
            black_box(out.len())
        })
    });

    // Client: decode the reply header and the result.
    let reply = reply_add_frame(12_345, 12_346);
    g.bench_function("client.decode_reply", |b| {
        b.iter(|| {
            let (resp, payload): (Response, &[u8]) =
                wire::decode_header(black_box(&reply[wire::PREFIX..])).unwrap();
            let result: i64 = wire::decode(payload).unwrap();
            black_box((resp, result))
        })
    });
    g.finish();
}

fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("value");
    // dict.set(i, i) on the client: key and value to Value, then postcard.
    g.bench_function("to_value+encode.int_pair", |b| {
        b.iter(|| {
            let k = to_value(&black_box(12_345i64)).unwrap();
            let v = to_value(&black_box(12_345i64)).unwrap();
            black_box(wire::encode(&(k, v)).unwrap())
        })
    });
    // The server side of it: postcard back to Value.
    let encoded = wire::encode(&(Value::Int(12_345), Value::Int(12_345))).unwrap();
    g.bench_function("decode.int_pair", |b| {
        b.iter(|| black_box(wire::decode::<(Value, Value)>(black_box(&encoded)).unwrap()))
    });
    g.bench_function("from_value.int", |b| {
        b.iter(|| black_box(from_value::<i64>(black_box(Value::Int(12_345))).unwrap()))
    });
    // A small struct-like map.
    let map: BTreeMap<String, i64> = (0..8).map(|i| (format!("key{i}"), i)).collect();
    g.bench_function("to_value.map8", |b| {
        b.iter(|| black_box(to_value(black_box(&map)).unwrap()))
    });
    // value.1mib: 1 MiB of bytes each way.
    let data = serde_bytes::ByteBuf::from(vec![0x5a; 1 << 20]);
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("to_value+encode.1mib", |b| {
        b.iter(|| {
            let v = to_value(black_box(&data)).unwrap();
            black_box(wire::encode(&v).unwrap())
        })
    });
    g.bench_function("to_value.1mib", |b| {
        b.iter(|| black_box(to_value(black_box(&data)).unwrap()))
    });
    let as_value = to_value(&data).unwrap();
    g.bench_function("encode.value.1mib", |b| {
        b.iter(|| black_box(wire::encode(black_box(&as_value)).unwrap()))
    });
    // For reference: postcard on the bytes themselves, no Value.
    g.bench_function("encode.bytes.1mib", |b| {
        b.iter(|| black_box(wire::encode(black_box(&data)).unwrap()))
    });
    let encoded = wire::encode(&as_value).unwrap();
    g.bench_function("decode+from_value.1mib", |b| {
        b.iter(|| {
            let v: Value = wire::decode(black_box(&encoded)).unwrap();
            black_box(from_value::<serde_bytes::ByteBuf>(v).unwrap())
        })
    });
    g.finish();
}

fn dispatch(c: &mut Criterion) {
    let manager = ProbeManager::new();
    manager.start_in_thread().expect("in-process server");
    let probe = manager.probe().expect("probe");
    assert!(probe.capture().expect("capture"));
    let cx = CAPTURED.lock().unwrap().take().expect("a call context");

    let (index, _) = add_method();
    let maths = Arc::new(ObjectLock::new(MathsClass));
    let args = wire::encode(&(12_345i64, 1i64)).unwrap();
    let mut g = c.benchmark_group("dispatch");
    // What the server does for a call once the object is found: decode the
    // arguments, take the object's lock, run add, encode the result.
    g.bench_function("maths.add", |b| {
        b.iter(|| {
            match <MathsClass as Shared>::dispatch(
                Arc::clone(&maths),
                black_box(index),
                black_box(&args),
                &cx,
            ) {
                managers::__private::Outcome::Ready(r) => black_box(r.unwrap()),
                managers::__private::Outcome::Pending(_) => panic!("add is synchronous"),
            }
        })
    });
    g.finish();

    // For scale: a whole blocking call to an in-process server over its
    // Unix socket (server on a thread of this process).
    let mut g = c.benchmark_group("roundtrip");
    g.bench_function("probe.capture.in_thread", |b| {
        b.iter(|| black_box(probe.capture().unwrap()))
    });
    g.finish();
    drop(cx);
    drop(probe);
    manager.shutdown().unwrap();
}

criterion_group!(benches, codec, value, dispatch);
criterion_main!(benches);
