use managers::shared;
use managers::value::Value;

#[derive(Default)]
pub struct Plain;

// The typed markers need `typed`.
#[shared]
impl Plain {
    #[returns(i64)]
    pub fn get(&self) -> Value {
        Value::None
    }
}

#[derive(Default)]
pub struct Box2;

#[shared(typed(T))]
impl Box2 {
    // An owner is the caller's thread id, a u64.
    pub fn held(&self, #[owner] owner: String) -> bool {
        owner.is_empty()
    }

    // Not a Python table option.
    #[py("__len__", reverse)]
    pub fn len(&self) -> usize {
        0
    }
}

fn main() {}
