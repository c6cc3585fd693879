//! A pickle codec that runs nothing.
//!
//! [`decode`] reads the pickle protocols CPython writes (0 to 5, including
//! the frames, memo and `STACK_GLOBAL` of protocol 4, which
//! `multiprocessing`'s `ForkingPickler` uses) into an [`Object`]: pickle's
//! data model, restricted to plain data plus the handful of classes a
//! manager's conversation needs. A global (`GLOBAL`, `STACK_GLOBAL`) is
//! looked up in a short allowlist ([`Global`]) and becomes data; a global
//! outside it is refused on the spot, and nothing is ever imported or
//! called: `REDUCE`, `NEWOBJ` and `BUILD` of an allowed class only shape
//! data (a `slice(1, 5, None)` becomes [`Object::Slice`], a manager's
//! `Token` becomes [`Object::Token`]).
//!
//! [`encode`] writes an [`Object`] as protocol 4, which every CPython since
//! 3.4 reads.
//!
//! Input is bounded: nesting (128 levels), the number of objects a pickle
//! may expand to (shared references included, so a small pickle cannot
//! unfold into a huge value), the memo, and the sizes of strings and
//! integers (128 bits at most; a bigger int is refused).

mod decode;
mod encode;

pub use decode::{decode, decode_with, Limits};
pub use encode::encode;

use std::fmt;

/// A value read from, or written to, a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` of at most 128 bits.
    Int(i128),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `bytearray`.
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<Object>),
    /// A `tuple`.
    Tuple(Vec<Object>),
    /// A `dict`, in insertion order.
    Dict(Vec<(Object, Object)>),
    /// A `set`.
    Set(Vec<Object>),
    /// A `frozenset`.
    FrozenSet(Vec<Object>),
    /// `slice(start, stop, step)`.
    Slice(Box<[Object; 3]>),
    /// `range(start, stop, step)`, kept unexpanded.
    Range {
        /// First value.
        start: i128,
        /// End (exclusive).
        stop: i128,
        /// Step (never 0).
        step: i128,
    },
    /// `array.array(typecode, items)`.
    Array {
        /// The array's typecode (`'i'`, `'d'`, ...).
        typecode: char,
        /// Its elements.
        items: Vec<Object>,
    },
    /// A `multiprocessing.managers.Token`.
    Token(Box<Token>),
    /// A pickled proxy: `RebuildProxy(class, token, serializer, kwds)`.
    Proxy(Box<Proxy>),
    /// An exception instance: its class and `args`.
    Exception(Box<Exception>),
    /// A `multiprocessing.managers.Namespace`, with its attributes.
    Namespace(Vec<(String, Object)>),
    /// An allowed class or function itself (the first item of a proxy's
    /// reduction, an exception class sent as a value, ...).
    Global(Global),
}

/// `multiprocessing.managers.Token(typeid, address, id)`, as pickled.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The typeid.
    pub typeid: String,
    /// The server's address: `(host, port)` for TCP, a path for Unix.
    pub address: Object,
    /// The object's id on its server (CPython: hexadecimal text).
    pub id: Object,
}

/// A proxy as `BaseProxy.__reduce__` pickles it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    /// The proxy class (`DictProxy`, `AutoProxy`, ...).
    pub class: Global,
    /// The object it stands for.
    pub token: Token,
    /// The serializer name (`'pickle'`).
    pub serializer: String,
    /// Extra keywords (`exposed` for an `AutoProxy`, ...).
    pub kwds: Vec<(Object, Object)>,
}

/// An exception instance: `class(*args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// Which exception.
    pub class: Global,
    /// Its `args`.
    pub args: Vec<Object>,
}

impl Exception {
    /// `class(message)`.
    pub fn new(class: Global, message: impl Into<String>) -> Exception {
        Exception {
            class,
            args: vec![Object::Str(message.into())],
        }
    }

    /// The first argument as text (an exception's message), if it is one.
    pub fn message(&self) -> String {
        match self.args.first() {
            Some(Object::Str(s)) => s.clone(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }
}

impl Object {
    /// A `str`.
    pub fn str(s: impl Into<String>) -> Object {
        Object::Str(s.into())
    }

    /// The text, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python's name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::None => "NoneType",
            Object::Bool(_) => "bool",
            Object::Int(_) => "int",
            Object::Float(_) => "float",
            Object::Str(_) => "str",
            Object::Bytes(_) => "bytes",
            Object::ByteArray(_) => "bytearray",
            Object::List(_) => "list",
            Object::Tuple(_) => "tuple",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::FrozenSet(_) => "frozenset",
            Object::Slice(_) => "slice",
            Object::Range { .. } => "range",
            Object::Array { .. } => "array.array",
            Object::Token(_) => "Token",
            Object::Proxy(_) => "proxy",
            Object::Exception(_) => "exception",
            Object::Namespace(_) => "Namespace",
            Object::Global(_) => "type",
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError(pub String);

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PickleError {}

macro_rules! globals {
    ($($(#[$doc:meta])* $variant:ident = $module:literal . $name:literal,)*) => {
        /// The classes and functions a pickle may name: everything else is
        /// refused. Each stands for data and is never imported or called.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Global {
            $($(#[$doc])* $variant,)*
        }

        impl Global {
            const ALL: &'static [Global] = &[$(Global::$variant,)*];

            /// Module and qualified name, as pickled.
            pub fn path(self) -> (&'static str, &'static str) {
                match self {
                    $(Global::$variant => ($module, $name),)*
                }
            }
        }
    };
}

globals! {
    /// `multiprocessing.managers.Token`.
    Token = "multiprocessing.managers"."Token",
    /// `multiprocessing.managers.RebuildProxy`.
    RebuildProxy = "multiprocessing.managers"."RebuildProxy",
    /// `multiprocessing.managers.AutoProxy`.
    AutoProxy = "multiprocessing.managers"."AutoProxy",
    /// `multiprocessing.managers.BaseProxy`.
    BaseProxy = "multiprocessing.managers"."BaseProxy",
    /// `multiprocessing.managers.DictProxy`.
    DictProxy = "multiprocessing.managers"."DictProxy",
    /// `multiprocessing.managers.ListProxy`.
    ListProxy = "multiprocessing.managers"."ListProxy",
    /// `multiprocessing.managers.IteratorProxy`.
    IteratorProxy = "multiprocessing.managers"."IteratorProxy",
    /// `multiprocessing.managers.AcquirerProxy`.
    AcquirerProxy = "multiprocessing.managers"."AcquirerProxy",
    /// `multiprocessing.managers.ConditionProxy`.
    ConditionProxy = "multiprocessing.managers"."ConditionProxy",
    /// `multiprocessing.managers.EventProxy`.
    EventProxy = "multiprocessing.managers"."EventProxy",
    /// `multiprocessing.managers.BarrierProxy`.
    BarrierProxy = "multiprocessing.managers"."BarrierProxy",
    /// `multiprocessing.managers.NamespaceProxy`.
    NamespaceProxy = "multiprocessing.managers"."NamespaceProxy",
    /// `multiprocessing.managers.ValueProxy`.
    ValueProxy = "multiprocessing.managers"."ValueProxy",
    /// `multiprocessing.managers.ArrayProxy`.
    ArrayProxy = "multiprocessing.managers"."ArrayProxy",
    /// `multiprocessing.managers.PoolProxy`.
    PoolProxy = "multiprocessing.managers"."PoolProxy",
    /// `multiprocessing.managers.Namespace`.
    Namespace = "multiprocessing.managers"."Namespace",
    /// `multiprocessing.managers.RemoteError`.
    RemoteError = "multiprocessing.managers"."RemoteError",
    /// `multiprocessing.context.AuthenticationError`.
    AuthenticationError = "multiprocessing.context"."AuthenticationError",
    /// `builtins.slice`.
    Slice = "builtins"."slice",
    /// `builtins.range`.
    Range = "builtins"."range",
    /// `builtins.list`.
    List = "builtins"."list",
    /// `builtins.tuple`.
    Tuple = "builtins"."tuple",
    /// `builtins.dict`.
    Dict = "builtins"."dict",
    /// `builtins.set`.
    Set = "builtins"."set",
    /// `builtins.frozenset`.
    FrozenSet = "builtins"."frozenset",
    /// `builtins.bytes`.
    Bytes = "builtins"."bytes",
    /// `builtins.bytearray`.
    ByteArray = "builtins"."bytearray",
    /// `_codecs.encode` (protocol 2's `bytes`).
    CodecsEncode = "_codecs"."encode",
    /// `array.array`.
    Array = "array"."array",
    /// `array._array_reconstructor` (protocol 3 and later's arrays).
    ArrayReconstructor = "array"."_array_reconstructor",
    /// `collections.OrderedDict`.
    OrderedDict = "collections"."OrderedDict",
    /// `builtins.Exception`.
    Exception = "builtins"."Exception",
    /// `builtins.KeyError`.
    KeyError = "builtins"."KeyError",
    /// `builtins.IndexError`.
    IndexError = "builtins"."IndexError",
    /// `builtins.ValueError`.
    ValueError = "builtins"."ValueError",
    /// `builtins.TypeError`.
    TypeError = "builtins"."TypeError",
    /// `builtins.RuntimeError`.
    RuntimeError = "builtins"."RuntimeError",
    /// `builtins.AttributeError`.
    AttributeError = "builtins"."AttributeError",
    /// `builtins.NotImplementedError`.
    NotImplementedError = "builtins"."NotImplementedError",
    /// `builtins.AssertionError`.
    AssertionError = "builtins"."AssertionError",
    /// `builtins.StopIteration`.
    StopIteration = "builtins"."StopIteration",
    /// `builtins.LookupError`.
    LookupError = "builtins"."LookupError",
    /// `builtins.OverflowError`.
    OverflowError = "builtins"."OverflowError",
    /// `builtins.ZeroDivisionError`.
    ZeroDivisionError = "builtins"."ZeroDivisionError",
    /// `builtins.OSError`.
    OsError = "builtins"."OSError",
    /// `builtins.EOFError`.
    EofError = "builtins"."EOFError",
    /// `builtins.TimeoutError`.
    TimeoutError = "builtins"."TimeoutError",
    /// `builtins.MemoryError`.
    MemoryError = "builtins"."MemoryError",
    /// `queue.Empty` (defined in `_queue`).
    QueueEmpty = "_queue"."Empty",
    /// `queue.Full`.
    QueueFull = "queue"."Full",
    /// `threading.BrokenBarrierError`.
    BrokenBarrierError = "threading"."BrokenBarrierError",
    /// `_pickle.UnpicklingError` (`pickle.UnpicklingError`).
    UnpicklingError = "_pickle"."UnpicklingError",
    /// `_pickle.PicklingError` (`pickle.PicklingError`).
    PicklingError = "_pickle"."PicklingError",
}

/// Module renames of protocols 0-2 (`fix_imports`), to their Python 3
/// names.
const OLD_MODULES: &[(&str, &str)] = &[
    ("__builtin__", "builtins"),
    ("exceptions", "builtins"),
    ("copy_reg", "copyreg"),
    ("Queue", "queue"),
    ("pickle", "_pickle"),
];

impl Global {
    /// The allowed global of this module and name, if any.
    pub fn lookup(module: &str, name: &str) -> Option<Global> {
        let module = OLD_MODULES
            .iter()
            .find(|(old, _)| *old == module)
            .map_or(module, |(_, new)| *new);
        let (module, name) = match (module, name) {
            ("builtins", "xrange") => ("builtins", "range"),
            ("queue", "Empty") => ("_queue", "Empty"),
            other => other,
        };
        Global::ALL
            .iter()
            .copied()
            .find(|g| g.path() == (module, name))
    }

    /// Whether this is an exception class.
    pub fn is_exception(self) -> bool {
        use Global::*;
        matches!(
            self,
            RemoteError
                | AuthenticationError
                | Exception
                | KeyError
                | IndexError
                | ValueError
                | TypeError
                | RuntimeError
                | AttributeError
                | NotImplementedError
                | AssertionError
                | StopIteration
                | LookupError
                | OverflowError
                | ZeroDivisionError
                | OsError
                | EofError
                | TimeoutError
                | MemoryError
                | QueueEmpty
                | QueueFull
                | BrokenBarrierError
                | UnpicklingError
                | PicklingError
        )
    }

    /// Whether this is one of `multiprocessing.managers`' proxy classes.
    pub fn is_proxy_class(self) -> bool {
        use Global::*;
        matches!(
            self,
            AutoProxy
                | BaseProxy
                | DictProxy
                | ListProxy
                | IteratorProxy
                | AcquirerProxy
                | ConditionProxy
                | EventProxy
                | BarrierProxy
                | NamespaceProxy
                | ValueProxy
                | ArrayProxy
                | PoolProxy
        )
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (module, name) = self.path();
        write!(f, "{module}.{name}")
    }
}

#[cfg(test)]
mod tests;
