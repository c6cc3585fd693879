use managers::shared;

#[derive(Default)]
pub struct Foo;

#[shared(exposed(f))]
impl Foo {
    pub fn f(&self) -> String {
        "f()".into()
    }

    pub fn _h(&self) -> String {
        "_h()".into()
    }
}

fn _call(proxy: FooProxy) {
    let _ = proxy.f();
    let _ = proxy._h();
}

fn main() {}
