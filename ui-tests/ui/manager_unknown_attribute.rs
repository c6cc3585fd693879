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
        #[singelton]
        Maths: Maths,
        #[callable]
        Other: Maths,
    }
}

fn main() {}
