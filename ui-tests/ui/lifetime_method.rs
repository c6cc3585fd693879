use managers::shared;

#[derive(Default)]
pub struct Store;

#[shared]
impl Store {
    pub fn first<'a>(&self, words: &'a [String]) -> usize {
        words.len()
    }
}

fn main() {}
