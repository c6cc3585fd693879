use managers::shared;

#[derive(Default)]
pub struct Store;

#[shared]
impl Store {
    pub fn put<T: serde::Serialize>(&self, _value: T) {}

    pub fn len(&self) -> usize {
        0
    }
}

fn main() {}
