use managers::shared;

#[derive(Default)]
pub struct Maths;

#[shared(exposed(add, new))]
impl Maths {
    pub fn new() -> Self {
        Maths
    }

    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn main() {}
