//! Procedural macros of the [`managers`](https://docs.rs/managers) crate.
//!
//! - [`macro@shared`] turns an inherent `impl` block into a served type:
//!   server-side dispatch plus a blocking and an async proxy.
//! - [`manager!`] declares a manager type: the typeids it serves, how each is
//!   built, and one create method per typeid.
//! - [`macro@Pod`] lets a `#[repr(C)]` struct of plain data live in shared
//!   memory.
//!
//! Each macro is a pipeline of three stages, one file each: `parse` (syntax
//! only), `model` (validation, every error collected) and `expand` (code
//! generation). Generated code reaches the runtime only through absolute
//! `::managers::__private` paths, so renamed imports and
//! `#![no_implicit_prelude]` users compile.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod codec;
mod errors;
mod fingerprint;
mod manager;
mod names;
mod paths;
mod pod;
mod shared;
mod types;

/// Serve the methods of an inherent `impl` block through a manager.
///
/// Generates `impl managers::server::Shared for T` (dispatch of every exposed
/// method), a blocking proxy `TProxy` and an async proxy `TAsyncProxy` with
/// one method per exposed method, taking the same arguments and returning
/// `managers::Result<R>`.
///
/// Exposed by default: the `pub` methods that take `&self` or `&mut self`.
/// Options:
/// - `typeid = "Name"`: the default typeid (the type's name otherwise);
/// - `exposed(a, b)`: expose exactly these methods, `pub` or not;
/// - `crate = "path"`: where the `managers` crate is, when your
///   `Cargo.toml` renames it (`mgr = { package = "managers", ... }` and
///   `#[mgr::shared(crate = "mgr")]`), as serde's and tokio's macros take it.
///
/// Every exposed method has a *signature fingerprint*, a hash of its name,
/// its receiver, `async`, and its argument and result types **as written**
/// in the block. The proxy sends it with each call and the server refuses a
/// call whose fingerprint differs
/// (`RemoteError::SignatureMismatch`),
/// so a client built from another version of the type fails clearly
/// instead of misreading bytes. It is a version check on the written
/// types, not a check of their structure: writing `std::string::String`
/// for `String` or renaming an alias changes it, while adding a field to a
/// struct passed as an argument does not (such a change is caught, if at
/// all, when the bytes fail to decode).
///
/// A method marked `#[proxy]` returns another shared object (`T`,
/// `Result<T, E>` or `Option<T>` where `T` is `#[shared]`): the object stays
/// on the server and the caller gets a proxy to it.
///
/// ```ignore
/// #[managers::shared(typeid = "Maths")]
/// impl MathsClass {
///     pub fn add(&self, x: i64, y: i64) -> i64 { x + y }
/// }
/// // let maths: MathsClassProxy = manager.maths()?;
/// // assert_eq!(maths.add(4, 3)?, 7);
/// ```
#[proc_macro_attribute]
pub fn shared(args: TokenStream, item: TokenStream) -> TokenStream {
    shared::expand(args.into(), item.into()).into()
}

/// Declare a manager type and the typeids it serves.
///
/// ```ignore
/// managers::manager! {
///     /// The program's manager.
///     pub struct MyManager {
///         Maths: MathsClass,                                   // built with Default
///         Counter: Counter = |start: i64| Counter::new(start), // counter(start)
///         #[singleton] Queue: SharedQueue = SharedQueue::default,
///         #[exposed(add)] Adder: MathsClass,
///         #[create_method = false] Child: Counter,
///     }
/// }
/// ```
///
/// Generates the struct (it derefs to `managers::BaseManager`), `new()`,
/// `with_options(options)`, and per typeid a create method named after it in
/// snake case (`maths()`, `maths_async()`) that builds an object on the
/// server and returns its proxy. Entry attributes: `#[exposed(..)]`
/// restricts the callable methods, `#[singleton]` hands every caller the same
/// object, `#[create_method = false]` registers a typeid that only methods
/// return. `#[manager(crate = "path")]` on the struct names the `managers`
/// crate when your `Cargo.toml` renames it.
///
/// A typeid whose create method would shadow a method of every manager
/// (`start`, `connect`, `address`, `server_pid`, ...) is refused; a
/// mistake in one entry leaves the others (and the manager) in place, so
/// each mistake gives one message.
#[proc_macro]
pub fn manager(input: TokenStream) -> TokenStream {
    manager::expand(input.into()).into()
}

/// Let a `#[repr(C)]` struct of plain data live in shared memory
/// (`managers::process::SharedValue<T>`, `SharedArray<T>`): implements
/// `managers::process::Pod`, after checking every field's type is `Pod`
/// (numbers, arrays of them, other `Pod` structs; a pointer, a reference
/// or a `String` is refused at its field) and that the struct has no
/// padding (refused at its name: padding bytes are uninitialized; make
/// them a field such as `_pad: [u8; 3]`). The struct must also be
/// `Clone + Copy`. `#[pod(crate = "path")]` names a renamed `managers`.
///
/// ```ignore
/// #[derive(Clone, Copy, managers::Pod)]
/// #[repr(C)]
/// struct Point { x: f64, y: f64 }
/// let p = managers::process::SharedValue::new(Point { x: 1.0, y: 2.0 })?;
/// ```
#[proc_macro_derive(Pod, attributes(pod))]
pub fn derive_pod(input: TokenStream) -> TokenStream {
    pod::expand(input.into()).into()
}
