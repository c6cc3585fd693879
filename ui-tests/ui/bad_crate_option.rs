use managers::shared;

#[derive(Default)]
pub struct Counter;

#[shared(crate = 3)]
impl Counter {
    pub fn get(&self) -> i64 {
        0
    }
}

fn main() {
    let _: Option<CounterProxy> = None;
}
