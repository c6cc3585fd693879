use managers::shared;

#[derive(Default)]
pub struct Stack<T> {
    items: Vec<T>,
}

#[shared]
impl<T: Send + Sync + 'static> Stack<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

fn main() {}
