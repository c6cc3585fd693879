use managers::shared;

#[derive(Default)]
pub struct Maths;

#[shared(exposed(add, substract))]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    pub fn subtract(&self, x: i64, y: i64) -> i64 {
        x - y
    }
}

fn main() {}
