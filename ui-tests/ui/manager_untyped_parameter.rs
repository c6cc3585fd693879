use managers::{manager, shared};

#[derive(Default)]
pub struct Counter {
    value: i64,
}

#[shared]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

manager! {
    pub struct MyManager {
        Counter: Counter = |value| Counter { value },
    }
}

fn main() {}
