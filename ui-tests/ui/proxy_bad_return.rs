use managers::shared;

#[derive(Default)]
pub struct Counter;

#[shared]
impl Counter {
    pub fn get(&self) -> i64 {
        0
    }
}

#[derive(Default)]
pub struct Factory;

#[shared]
impl Factory {
    #[proxy]
    pub fn pair(&self) -> (Counter, Counter) {
        (Counter, Counter)
    }

    #[proxy]
    pub fn number(&self) -> i64 {
        1
    }
}

fn main() {}
