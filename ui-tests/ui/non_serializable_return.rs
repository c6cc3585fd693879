use managers::shared;

pub struct Opaque;

#[derive(Default)]
pub struct Source;

#[shared]
impl Source {
    pub fn take(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
