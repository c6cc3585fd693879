use managers::{manager, shared};

#[derive(Default)]
pub struct Maths;

#[shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

manager! {
    pub struct MyManager {
        Maths: Maths,
        Maths: Maths,
    }
}

fn main() {
    let _ = MyManager::new().maths();
}
