use managers::shared;

pub struct Opaque;

#[derive(Default)]
pub struct Sink;

#[shared]
impl Sink {
    pub fn put(&self, _count: u32, _value: Opaque) {}
}

fn main() {}
