//! Functions that run in another process: any `fn` item, or a closure that
//! captures nothing, with serde arguments.
//!
//! A function item and a non-capturing closure are zero-sized types: the
//! type *is* the function. So what crosses to the child is not the
//! function but a trampoline monomorphised for its type
//! (`process_entry::<F, A>`), as an offset in the executable image
//! ([`FnRef`]); the child conjures the zero-sized `F` and calls it with the
//! decoded arguments. A closure that captures something is not zero-sized
//! and fails to compile (a constant assertion in the trampoline), and so
//! does a function pointer chosen at run time.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::image::fn_ptr;
use crate::error::Result;

/// A function that can run in another process: a `fn` item or a closure
/// that captures nothing, taking the elements of the tuple `Args` as its
/// parameters (Python's `target(*args)`).
///
/// Implemented for every such function of up to eight parameters; a
/// closure that captures a variable does not compile where a `Function` is
/// required to cross processes.
pub trait Function<Args>: Copy + Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Call it with the arguments unpacked.
    fn call(self, args: Args) -> Self::Output;
}

macro_rules! function {
    ($($arg:ident),*) => {
        impl<F, R, $($arg),*> Function<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Copy + Send + Sync + 'static,
        {
            type Output = R;
            #[allow(non_snake_case)]
            fn call(self, ($($arg,)*): ($($arg,)*)) -> R {
                self($($arg),*)
            }
        }
    };
}
function!();
function!(A1);
function!(A1, A2);
function!(A1, A2, A3);
function!(A1, A2, A3, A4);
function!(A1, A2, A3, A4, A5);
function!(A1, A2, A3, A4, A5, A6);
function!(A1, A2, A3, A4, A5, A6, A7);
function!(A1, A2, A3, A4, A5, A6, A7, A8);

/// How a process target's result becomes the process's exit code, as for
/// `main`: `()` is 0; `Err(e)` prints `Error: {e:?}` and is 1.
pub trait Exit {
    /// The exit code.
    fn exit_code(self) -> i32;
}

impl Exit for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl<T: Exit, E: std::fmt::Debug> Exit for std::result::Result<T, E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(value) => value.exit_code(),
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

/// The `F` a zero-sized function type stands for.
fn conjure<F: Copy + 'static>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "a function that runs in another process must be a fn item or a closure \
             that captures nothing (this one carries data, which cannot cross processes)"
        )
    };
    // SAFETY: `F` is zero-sized (asserted above at compile time) and, being
    // `Fn + Copy`, a fn item or a closure capturing only zero-sized copyable
    // values: it has no bytes to be invalid, and the parent held one.
    unsafe { std::mem::zeroed::<F>() }
}

/// What a child does with a target: decode its arguments, then (once the
/// parent has been told they arrived) run it and return the exit code.
pub(crate) type ProcessEntry = fn(&[u8]) -> Result<Box<dyn FnOnce() -> i32>>;

/// A pool task: decode `count` argument tuples one after the other from
/// `args`, call the function on each, append each encoded result to `out`.
/// `Err` is a decoding or encoding failure; a panic unwinds to the caller.
pub(crate) type TaskEntry = fn(&[u8], u32, &mut Vec<u8>) -> Result<()>;

fn_ptr!(ProcessEntry, TaskEntry);

fn process_entry<F, A>(args: &[u8]) -> Result<Box<dyn FnOnce() -> i32>>
where
    F: Function<A>,
    F::Output: Exit,
    A: DeserializeOwned + 'static,
{
    let args: A = crate::wire::decode(args)?;
    Ok(Box::new(move || conjure::<F>().call(args).exit_code()))
}

fn task_entry<F, A, R>(mut args: &[u8], count: u32, out: &mut Vec<u8>) -> Result<()>
where
    F: Function<A, Output = R>,
    A: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>();
    for _ in 0..count {
        let (call, rest): (A, &[u8]) = postcard::take_from_bytes(args)
            .map_err(|e| crate::error::Error::codec("decoding a task's arguments", e))?;
        args = rest;
        crate::wire::append(out, &f.call(call))?;
    }
    Ok(())
}

/// The entry of process target `F` called with `A`.
pub(crate) fn process_entry_of<F, A>(_target: F) -> ProcessEntry
where
    F: Function<A>,
    F::Output: Exit,
    A: DeserializeOwned + 'static,
{
    process_entry::<F, A>
}

/// The entry of pool task `F` called with `A`, returning `R`.
pub(crate) fn task_entry_of<F, A, R>(_task: F) -> TaskEntry
where
    F: Function<A, Output = R>,
    A: DeserializeOwned,
    R: Serialize,
{
    task_entry::<F, A, R>
}

#[cfg(test)]
mod tests {
    use super::super::image::{image_id, FnRef, SameImage};
    use super::*;

    fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    fn fails(code: i32) -> std::result::Result<(), String> {
        if code == 0 {
            Ok(())
        } else {
            Err(format!("code {code}"))
        }
    }

    #[test]
    fn functions_unpack_their_argument_tuples() {
        assert_eq!(Function::call(add, (2, 3)), 5);
        assert_eq!(Function::call(|| 9, ()), 9);
        assert_eq!(Function::call(|x: &str| x.len(), ("abc",)), 3);
    }

    #[test]
    fn a_task_runs_a_chunk_through_its_offset() {
        let entry = FnRef::new(task_entry_of(add)).unwrap();
        let same = SameImage::check(&image_id()).unwrap();
        let task = entry.resolve(&same).unwrap();
        let mut args = Vec::new();
        for pair in [(20i64, 22i64), (1, 2)] {
            crate::wire::append(&mut args, &pair).unwrap();
        }
        let mut out = Vec::new();
        task(&args, 2, &mut out).unwrap();
        let (first, rest): (i64, &[u8]) = postcard::take_from_bytes(&out).unwrap();
        assert_eq!((first, crate::wire::decode::<i64>(rest).unwrap()), (42, 3));
        assert!(
            task(&args, 3, &mut out).is_err(),
            "too few arguments are an error"
        );
    }

    #[test]
    fn a_target_gives_its_exit_code() {
        let same = SameImage::check(&image_id()).unwrap();
        let entry = FnRef::new(process_entry_of(fails))
            .unwrap()
            .resolve(&same)
            .unwrap();
        let run = entry(&crate::wire::encode(&(3,)).unwrap()).unwrap();
        assert_eq!(run(), 1);
        let run = entry(&crate::wire::encode(&(0,)).unwrap()).unwrap();
        assert_eq!(run(), 0);
        let closure = FnRef::new(process_entry_of(|| ()))
            .unwrap()
            .resolve(&same)
            .unwrap();
        assert_eq!(closure(&crate::wire::encode(&()).unwrap()).unwrap()(), 0);
    }
}
