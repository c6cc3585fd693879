use managers::manager;

#[derive(Default)]
pub struct Plain;

manager! {
    pub struct MyManager {
        Plain: Plain,
    }
}

fn main() {}
