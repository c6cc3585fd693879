// A `manager!` body that stops parsing keeps the entries before the
// mistake: the manager and their create methods still exist.
use managers::{manager, shared};

#[derive(Default)]
pub struct MathsClass;

#[shared]
impl MathsClass {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

manager! {
    pub struct MyManager {
        Maths: MathsClass,
        Broken: = MathsClass,
    }
}

fn main() -> managers::Result<()> {
    let manager = MyManager::new();
    manager.start()?;
    let maths = manager.maths()?;
    assert_eq!(maths.add(1, 2)?, 3);
    Ok(())
}
