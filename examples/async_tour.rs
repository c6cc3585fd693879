//! The async API in one program: a tokio `main`, typed async proxies of a
//! dict, a queue and a lock from a server process, a call cancelled by
//! dropping its future, and a call with a deadline.
//!
//! ```sh
//! cargo run --example async_tour
//! ```

use std::time::Duration;

use managers::sync::SyncManager;
use managers::Error;

#[tokio::main]
async fn main() -> managers::Result<()> {
    // First line of main: the started server process runs here.
    managers::bootstrap();
    let manager = SyncManager::new();
    manager.start()?;

    // A typed async dict.
    let stock = manager.dict_async::<String, u32>().await?;
    stock.set("apples".into(), 3).await?;
    stock.update([("pears".to_string(), 5)]).await?;
    println!("stock: {:?}", stock.items().await?);

    // A typed async queue between tasks: the consumer waits as a future
    // in this process and in the server, no thread blocked.
    let orders = manager.queue_async::<String>(0).await?;
    let consumer = {
        let (orders, stock) = (orders.clone(), stock.clone());
        tokio::spawn(async move {
            let fruit = orders.get().await?;
            let left = stock.get(&fruit).await? - 1;
            stock.set(fruit.clone(), left).await?;
            managers::Result::<(String, u32)>::Ok((fruit, left))
        })
    };
    orders.put("apples".into()).await?;
    let (fruit, left) = consumer.await.expect("the consumer task")?;
    println!("sold one of the {fruit}, {left} left");

    // A typed async lock: the guard releases it when dropped.
    let lock = manager.lock_async().await?;
    {
        let _held = lock.guard().await?;
        println!("locked while held: {}", lock.locked().await?);
    }
    // The release is sent from a task; give it a moment.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let locked = lock.locked().await?;
    println!("locked after the guard: {locked}");
    assert!(!locked);

    // A cancelled call: dropping the future of a waiting `get` withdraws it
    // in the server, so it takes nothing.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), orders.get()).await;
    println!(
        "a get nobody fed, dropped after 50 ms: {}",
        gave_up.is_err()
    );
    assert!(gave_up.is_err());
    orders.put("pears".into()).await?;
    let next = orders.get().await?;
    println!("the next get still receives: {next}");
    assert_eq!(next, "pears");

    // A deadline: calls through this proxy fail with `Error::Timeout` once
    // it passes, and the server withdraws them too.
    let impatient = orders.with_timeout(Duration::from_millis(50));
    match impatient.get().await {
        Err(Error::Timeout { after, .. }) => println!("no order within {after:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    orders.put("apples".into()).await?;
    let next = orders.get().await?;
    println!("and nothing was taken meanwhile: {next}");
    assert_eq!(next, "apples");

    drop((stock, orders, impatient, lock));
    // A withdrawn call holds its object until the server's answer to the
    // withdrawal is in (had the get been done, its undo would need the
    // queue to put the item back): wait for those, boundedly.
    let mut left = manager.number_of_objects()?;
    for _ in 0..200 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = manager.number_of_objects()?;
    }
    println!("objects left: {left}");
    assert_eq!(left, 0);
    Ok(())
}
