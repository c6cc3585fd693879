use managers::shared;

#[derive(Default)]
pub struct Counter {
    value: i64,
}

#[shared]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn into_value(self) -> i64 {
        self.value
    }
}

fn main() {}
