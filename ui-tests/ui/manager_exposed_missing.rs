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
        #[exposed(add, mul)]
        Maths: Maths,
    }
}

fn main() {}
