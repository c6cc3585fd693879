use managers::shared;

#[shared]
#[derive(Default)]
pub struct Counter {
    value: i64,
}

fn main() {
    let _ = Counter::default().value;
}
