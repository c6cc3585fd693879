//! A ping-pong of a u64 between two processes through iceoryx2's
//! publish-subscribe (two services), both sides polling with a yield each
//! turn: what issue 19's own ring is measured against (raw.shm, call.add).
use iceoryx2::prelude::*;
use std::time::Instant;

fn ports(
    node: &Node<ipc::Service>,
    out: &str,
    inp: &str,
) -> (
    iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>,
    iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>,
) {
    let a = node
        .service_builder(&out.try_into().unwrap())
        .publish_subscribe::<u64>()
        .open_or_create()
        .unwrap();
    let b = node
        .service_builder(&inp.try_into().unwrap())
        .publish_subscribe::<u64>()
        .open_or_create()
        .unwrap();
    (
        a.publisher_builder().create().unwrap(),
        b.subscriber_builder().create().unwrap(),
    )
}

fn recv(sub: &iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>) -> u64 {
    loop {
        if let Some(sample) = sub.receive().unwrap() {
            return *sample;
        }
        std::thread::yield_now();
    }
}

fn main() {
    let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
    if std::env::args().any(|a| a == "--echo") {
        let (publisher, subscriber) = ports(&node, "issue19/pong", "issue19/ping");
        loop {
            let n = recv(&subscriber);
            publisher.send_copy(n + 1).unwrap();
            if n == u64::MAX - 1 {
                return;
            }
        }
    }
    let (publisher, subscriber) = ports(&node, "issue19/ping", "issue19/pong");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--echo")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Wait until the echo answers.
    loop {
        publisher.send_copy(0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        if subscriber.receive().unwrap().is_some() {
            break;
        }
    }
    while subscriber.receive().unwrap().is_some() {}
    let rounds = 100_000u64;
    let mut figures = Vec::new();
    for rep in 0..6 {
        let begun = Instant::now();
        for i in 0..rounds {
            publisher.send_copy(i * 2).unwrap();
            let back = recv(&subscriber);
            assert_eq!(back, i * 2 + 1);
        }
        if rep > 0 {
            figures.push(begun.elapsed().as_secs_f64() * 1e6 / rounds as f64);
        }
    }
    publisher.send_copy(u64::MAX - 1).unwrap();
    let _ = child.wait();
    figures.sort_by(f64::total_cmp);
    println!(
        "{{\"iceoryx2_roundtrip_us\":{:.3}}}",
        figures[figures.len() / 2]
    );
}
