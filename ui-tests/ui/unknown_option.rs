use managers::shared;

#[derive(Default)]
pub struct Maths;

#[shared(expose(add), name = "Maths")]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn main() {}
