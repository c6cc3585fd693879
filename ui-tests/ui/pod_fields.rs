// #[derive(Pod)] refuses a field that cannot live in shared memory (a
// pointer means nothing in another process), at that field; and a struct
// without a fixed layout.
use managers::Pod;

#[derive(Clone, Copy, Pod)]
#[repr(C)]
struct WithPointer {
    id: u64,
    name: *const u8,
}

#[derive(Clone, Copy, Pod)]
struct NoLayout {
    id: u32,
}

#[derive(Clone, Copy, Pod)]
#[repr(C)]
enum Kind {
    A,
    B,
}

fn main() {}
