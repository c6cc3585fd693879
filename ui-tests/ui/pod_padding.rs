// #[derive(Pod)] refuses a struct with padding, at the struct: padding
// bytes are uninitialized and Pod promises every byte is a value. Explicit
// padding fields make it plain data.
use managers::Pod;

#[derive(Clone, Copy, Pod)]
#[repr(C)]
struct Padded {
    flag: u8,
    value: u64,
}

#[derive(Clone, Copy, Pod)]
#[repr(C, align(16))]
struct Aligned {
    value: u64,
}

#[derive(Clone, Copy, Pod)]
#[repr(C)]
struct Explicit {
    flag: u8,
    _pad: [u8; 7],
    value: u64,
}

fn main() {
    let _ = Explicit { flag: 1, _pad: [0; 7], value: 2 };
}
