// A block `#[shared]` refuses whole still leaves its type usable, so the
// manager and the code naming its proxy report nothing more.
use managers::{manager, shared};

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

manager! {
    pub struct GreetManager {
        Greeter: Greeter,
    }
}

fn keep(_proxy: GreeterProxy, _async_proxy: GreeterAsyncProxy) {}

fn main() {
    let manager = GreetManager::new();
    let _ = manager.greeter();
    let _ = keep;
}
