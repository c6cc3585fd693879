//! The seed's MathsClass, served by a manager in another process.
//!
//! `cargo run --example maths` prints 7 and 56, computed by the server
//! process, whose pid differs from this one's.

use managers::{manager, shared};

/// The object the server owns.
#[derive(Default)]
pub struct MathsClass;

#[shared(typeid = "Maths")]
impl MathsClass {
    /// x + y
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    /// x * y
    pub fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }

    /// The pid of the process running this method.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }
}

manager! {
    /// A manager serving MathsClass objects.
    pub struct MyManager {
        Maths: MathsClass,
    }
}

fn main() -> managers::Result<()> {
    // In the server process started below, this call serves and never
    // returns; here it returns at once.
    managers::bootstrap();

    let manager = MyManager::new();
    manager.start()?;
    let maths = manager.maths()?;
    println!("{}", maths.add(4, 3)?);
    println!("{}", maths.mul(7, 8)?);
    println!(
        "client pid {}, server pid {} (the object lives in the server)",
        std::process::id(),
        maths.pid()?
    );
    drop(maths);
    manager.shutdown()
}
