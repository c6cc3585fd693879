use managers::shared;

#[derive(Default)]
pub struct Maths;

#[shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn _call(maths: MathsProxy) -> managers::Result<i64> {
    maths.add(1, "two")
}

fn main() {}
