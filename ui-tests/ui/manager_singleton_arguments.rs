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
        #[singleton]
        Counter: Counter = |value: i64| Counter { value },
    }
}

fn main() {}
