//! Functions that run in another process: any `fn` item with serde
//! arguments.
//!
//! A function item is a zero-sized type: the type *is* the function. So
//! what crosses to the child is not the function but a trampoline
//! monomorphised for its type (`process_entry::<F, A>`), as an offset in
//! the executable image ([`FnRef`]); the child makes the zero-sized `F`
//! and calls it with the decoded arguments. Every trampoline is listed in
//! its kind's table as it is compiled (`image::entry!`), which is what
//! lets a receiver check an offset before it calls anything.
//!
//! Only `fn` items cross. A function pointer chosen at run time is not
//! zero-sized and does not compile (a constant assertion), nor does a
//! closure that captures a variable. A closure that captures nothing would
//! be zero-sized too, but so is one that captures zero-sized values (a
//! proof token, a CPU-feature witness), and the compiler cannot tell the
//! two apart; making such a value from nothing in another process (maybe
//! on another machine) could break what it proves. So closures are
//! refused when they are handed over (`ProcessError::Closure`), and a
//! trampoline refuses to make one even if an offset to it arrives.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::image::{entry, entry_kind, FnRef};
use crate::error::{ProcessError, Result};

mod sealed {
    /// Implemented only by the blanket impls of `target.rs`.
    pub trait Sealed<Args> {}
}

/// A function that can run in another process: a `fn` item taking the
/// elements of the tuple `Args` as its parameters (Python's
/// `target(*args)`).
///
/// Implemented for every `fn` item of up to eight parameters, and sealed:
/// the other process makes its own value of the function's zero-sized
/// type, which is only sound for a type that stands for a function and
/// nothing else. A closure has this trait too (the compiler cannot tell it
/// from a function item here) but is refused at run time with
/// [`ProcessError::Closure`] where it would cross; a capturing closure or a
/// function pointer does not compile.
pub trait Function<Args>: sealed::Sealed<Args> + Copy + Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Call it with the arguments unpacked.
    fn call(self, args: Args) -> Self::Output;
}

macro_rules! function {
    ($($arg:ident),*) => {
        impl<F, R, $($arg),*> sealed::Sealed<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Copy + Send + Sync + 'static,
        {
        }

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

/// How a process target's result becomes the process's exit code: as
/// Python, what a target returns is ignored (exit code 0), except that
/// `Err(e)` prints `Error: {e:?}` and is 1, as for `main`.
///
/// Implemented for `()`, every number, `bool`, `char`, strings, the
/// standard collections, `Option`, `Box` and tuples of up to four of
/// these, and `Result<T: Exit, E: Debug>`. For a type of your own, return
/// `()` or implement it (`fn exit_code(self) -> i32 { 0 }`).
#[diagnostic::on_unimplemented(
    message = "a process target returns `{Self}`, which does not say what exit code it means",
    label = "the target's return type",
    note = "what a target returns is ignored (exit code 0) and an `Err` exits with 1; \
            implement `managers::process::Exit` for `{Self}` (`fn exit_code(self) -> i32 {{ 0 }}`) \
            or return `()`"
)]
pub trait Exit {
    /// The exit code.
    fn exit_code(self) -> i32;
}

/// Types whose value a target's exit code ignores.
macro_rules! ignored {
    ($($t:ty),* $(,)?) => {$(
        impl Exit for $t {
            fn exit_code(self) -> i32 {
                0
            }
        }
    )*};
}
ignored!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str,
);

/// Generic types whose value a target's exit code ignores.
macro_rules! ignored_generic {
    ($([$($p:ident),*] $t:ty),* $(,)?) => {$(
        impl<$($p),*> Exit for $t {
            fn exit_code(self) -> i32 {
                0
            }
        }
    )*};
}
ignored_generic!(
    [T] Vec<T>,
    [T] Option<T>,
    [T] Box<T>,
    [T] std::collections::VecDeque<T>,
    [T] std::collections::BTreeSet<T>,
    [T, S] std::collections::HashSet<T, S>,
    [K, V] std::collections::BTreeMap<K, V>,
    [K, V, S] std::collections::HashMap<K, V, S>,
    [A, B] (A, B),
    [A, B, C] (A, B, C),
    [A, B, C, D] (A, B, C, D),
);

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

/// `Ok` if `F` is a function item; a closure is [`ProcessError::Closure`].
///
/// The compiler names a closure's type after the function it is written in
/// followed by `{{closure}}`, and nothing else has `{` in its path: a test
/// (`closures_are_told_apart`) pins that, so a compiler that changed it
/// would fail the build's tests instead of letting closures through.
pub(crate) fn function_item<F>() -> std::result::Result<(), ProcessError> {
    let name = std::any::type_name::<F>();
    if name.contains("{closure") {
        return Err(ProcessError::Closure(name.to_string()));
    }
    Ok(())
}

/// At the caller's `$entry` (a public function taking a function `$f`): a
/// compile error unless `$f` is zero-sized, that is a fn item (or a closure
/// capturing nothing, refused at run time). In the public function itself,
/// so the error's notes name the user's call, not a trampoline.
macro_rules! fn_item {
    ($f:ty, $entry:literal) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                concat!(
                    "the function given to `",
                    $entry,
                    "` must be a fn item: a closure that captures variables, or a \
                     function pointer chosen at run time, cannot run in another process"
                )
            )
        }
    };
}
pub(crate) use fn_item;

/// The `F` a zero-sized function item type stands for. The public entry
/// points refuse any other `F` at compile time (`fn_item!`); this checks
/// again, at run time, what the soundness of making one rests on.
fn conjure<F: Copy + 'static>() -> Result<F> {
    if std::mem::size_of::<F>() != 0 {
        return Err(ProcessError::Closure(std::any::type_name::<F>().to_string()).into());
    }
    function_item::<F>()?;
    // SAFETY: `F` is zero-sized (checked just above), so it has no bytes
    // that could be invalid, and it is not a closure (checked too): with
    // `F: Fn + Copy` that leaves a function item, a type with no invariant
    // beyond being that function.
    Ok(unsafe { std::mem::zeroed::<F>() })
}

/// What a child does with a target: decode its arguments, then (once the
/// parent has been told they arrived) run it and return the exit code.
pub(crate) type ProcessEntry = fn(&[u8]) -> Result<Box<dyn FnOnce() -> i32>>;

/// A pool task: decode `count` argument tuples one after the other from
/// `args`, call the function on each, append each encoded result to `out`.
/// `Err` is a decoding or encoding failure; a panic unwinds to the caller.
pub(crate) type TaskEntry = fn(&[u8], u32, &mut Vec<u8>) -> Result<()>;

entry_kind!(
    ProcessEntry,
    "a process target",
    "managers_process_entries",
    __start_managers_process_entries,
    __stop_managers_process_entries
);
entry_kind!(
    TaskEntry,
    "a pool task",
    "managers_task_entries",
    __start_managers_task_entries,
    __stop_managers_task_entries
);

fn process_entry<F, A>(args: &[u8]) -> Result<Box<dyn FnOnce() -> i32>>
where
    F: Function<A>,
    F::Output: Exit,
    A: DeserializeOwned + 'static,
{
    let f = conjure::<F>()?;
    let args: A = crate::codec::decode(args)?;
    Ok(Box::new(move || f.call(args).exit_code()))
}

fn task_entry<F, A, R>(mut args: &[u8], count: u32, out: &mut Vec<u8>) -> Result<()>
where
    F: Function<A, Output = R>,
    A: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>()?;
    for _ in 0..count {
        let (call, rest): (A, &[u8]) = postcard::take_from_bytes(args)
            .map_err(|e| crate::error::Error::codec("decoding a task's arguments", e))?;
        args = rest;
        crate::codec::append(out, &f.call(call))?;
    }
    Ok(())
}

/// Call the function item `F` in this process (its trampoline's way: a
/// closure is refused), for code that is generic over a function it was
/// only given the type of.
#[cfg(any(feature = "manager", test))]
pub(crate) fn call<F: Function<A>, A>(args: A) -> Result<F::Output> {
    Ok(conjure::<F>()?.call(args))
}

/// The entry of process target `F` called with `A`, as it crosses.
pub(crate) fn process_entry_of<F, A>(
    _target: F,
) -> std::result::Result<FnRef<ProcessEntry>, ProcessError>
where
    F: Function<A>,
    F::Output: Exit,
    A: DeserializeOwned + 'static,
{
    entry!("managers_process_entries", process_entry::<F, A>);
    function_item::<F>()?;
    FnRef::new(process_entry::<F, A> as ProcessEntry)
}

/// The entry of pool task `F` called with `A`, returning `R`.
pub(crate) fn task_entry_of<F, A, R>(
    _task: F,
) -> std::result::Result<FnRef<TaskEntry>, ProcessError>
where
    F: Function<A, Output = R>,
    A: DeserializeOwned,
    R: Serialize,
{
    entry!("managers_task_entries", task_entry::<F, A, R>);
    function_item::<F>()?;
    FnRef::new(task_entry::<F, A, R> as TaskEntry)
}

#[cfg(test)]
mod tests {
    use super::super::image::{image_id, SameImage};
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
        let entry = task_entry_of(add).unwrap();
        let same = SameImage::check(&image_id()).unwrap();
        let task = entry.resolve(&same);
        let mut args = Vec::new();
        for pair in [(20i64, 22i64), (1, 2)] {
            crate::codec::append(&mut args, &pair).unwrap();
        }
        let mut out = Vec::new();
        task(&args, 2, &mut out).unwrap();
        let (first, rest): (i64, &[u8]) = postcard::take_from_bytes(&out).unwrap();
        assert_eq!((first, crate::codec::decode::<i64>(rest).unwrap()), (42, 3));
        assert!(
            task(&args, 3, &mut out).is_err(),
            "too few arguments are an error"
        );
    }

    #[test]
    fn a_target_gives_its_exit_code() {
        let same = SameImage::check(&image_id()).unwrap();
        let entry = process_entry_of(fails).unwrap().resolve(&same);
        let run = entry(&crate::codec::encode(&(3,)).unwrap()).unwrap();
        assert_eq!(run(), 1);
        let run = entry(&crate::codec::encode(&(0,)).unwrap()).unwrap();
        assert_eq!(run(), 0);
        // Issue 18: what a target returns is ignored, as Python's.
        let entry = process_entry_of(double).unwrap().resolve(&same);
        assert_eq!(entry(&crate::codec::encode(&(21,)).unwrap()).unwrap()(), 0);
        let entry = process_entry_of(listed).unwrap().resolve(&same);
        assert_eq!(entry(&crate::codec::encode(&()).unwrap()).unwrap()(), 0);
    }

    fn double(x: i32) -> i32 {
        2 * x
    }

    fn listed() -> Result<Vec<(String, Option<u8>)>, String> {
        Ok(vec![("a".into(), None)])
    }

    /// The trampoline of `f`, reached as a forged offset would reach it.
    fn trampoline_of<F: Function<()>>(_f: F) -> ProcessEntry
    where
        F::Output: Exit,
    {
        process_entry::<F, ()>
    }

    #[test]
    fn closures_are_told_apart() {
        let closure = || ();
        let err = process_entry_of(closure).expect_err("a closure is refused");
        assert!(
            matches!(err, ProcessError::Closure(ref name) if name.contains("closures_are_told_apart")),
            "{err}"
        );
        let token = Witness;
        let capturing = move || token.check();
        assert_eq!(std::mem::size_of_val(&capturing), 0);
        assert!(task_entry_of(move |x: u8| (capturing(), x).1).is_err());
        assert_eq!(call_of(three).unwrap(), 3);
        assert!(call_of(|| 4u8).is_err(), "a closure is not called either");
        assert!(function_item::<fn() -> u32>().is_ok());
        assert!(function_item::<Witness>().is_ok());
        // Even reached through an offset, a closure's trampoline refuses.
        let err = trampoline_of(capturing)(&crate::codec::encode(&()).unwrap())
            .err()
            .expect("refused");
        assert!(matches!(
            err,
            crate::Error::Process(ProcessError::Closure(_))
        ));
        assert!(trampoline_of(unit)(&crate::codec::encode(&()).unwrap()).is_ok());
    }

    fn unit() {}

    fn three() -> u8 {
        3
    }

    fn call_of<F: Function<(), Output = u8>>(_f: F) -> crate::Result<u8> {
        call::<F, ()>(())
    }

    /// A zero-sized value whose existence would prove something.
    #[derive(Clone, Copy)]
    struct Witness;

    impl Witness {
        fn check(self) {}
    }
}
