use managers::shared;

pub trait Greet {
    fn greet(&self) -> String;
}

#[derive(Default)]
pub struct Greeter;

#[shared]
impl Greet for Greeter {
    fn greet(&self) -> String {
        "hello".into()
    }
}

fn main() {}
