use managers::shared;

#[derive(Default)]
pub struct Maths;

#[shared(typeid = "Maths", typeid = "Calculator")]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn main() {}
