//! The unpickler: pickle's stack machine over an arena, then the arena's
//! result turned into an [`Object`] tree within the limits.
//!
//! Objects live in a flat arena and the stack, marks and memo hold their
//! indexes, so a list stays mutable after it is memoized (`APPENDS` after
//! `MEMOIZE`, as CPython writes it) and a shared reference costs one index.
//! Nothing is built beyond the input's size until the last step, which
//! walks the result once, counting every object it produces (a reference
//! shared a thousand times counts a thousand times) and refusing past the
//! limits, so neither a deep nor a self-referencing nor a "billion laughs"
//! pickle gets further than an error.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::{Exception, Global, Object, PickleError, Proxy, Token};

/// Bounds on what one pickle may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How deeply containers may nest.
    pub max_depth: usize,
    /// How many objects the result may hold, counting every occurrence of
    /// a shared one.
    pub max_objects: usize,
    /// How many elements a `range` may expand to when it is read as data.
    pub max_range: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 128,
            max_objects: 8 << 20,
            max_range: 1 << 20,
        }
    }
}

/// Read one pickle with the default [`Limits`].
pub fn decode(input: &[u8]) -> Result<Object, PickleError> {
    decode_with(input, Limits::default())
}

/// Read one pickle within `limits`. Bytes after its `STOP` are ignored, as
/// `pickle.loads` ignores them.
pub fn decode_with(input: &[u8], limits: Limits) -> Result<Object, PickleError> {
    let mut machine = Machine {
        input,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
    };
    let top = machine.run()?;
    let mut budget = limits.max_objects;
    machine.resolve(top, 0, &limits, &mut budget)
}

type Id = u32;

/// One object under construction.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    ByteArray(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    FrozenSet(Vec<Id>),
    Global(Global),
    Slice([Id; 3]),
    Range(Box<[i128; 3]>),
    Array(char, Vec<Id>),
    /// A `Token` made by `NEWOBJ`, its fields set by `BUILD`.
    Token(Option<[Id; 3]>),
    Proxy(Global, [Id; 3]),
    Exception(Global, Vec<Id>),
    /// A `Namespace` made by `NEWOBJ`, its attributes set by `BUILD`.
    Namespace(Option<Id>),
}

/// Pickle's memo: keys are dense in what CPython writes (`MEMOIZE` uses
/// the memo's length), so a vector, with a map for any other key.
#[derive(Default)]
struct Memo {
    dense: Vec<Id>,
    sparse: HashMap<u32, Id>,
}

impl Memo {
    fn put(&mut self, key: u32, id: Id) {
        if key as usize == self.dense.len() {
            self.dense.push(id);
        } else if (key as usize) < self.dense.len() {
            self.dense[key as usize] = id;
        } else {
            self.sparse.insert(key, id);
        }
    }

    fn get(&self, key: u32) -> Result<Id, PickleError> {
        self.dense
            .get(key as usize)
            .or_else(|| self.sparse.get(&key))
            .copied()
            .ok_or_else(|| refuse(format!("memo key {key} was never stored")))
    }

    fn len(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }
}

fn refuse(message: impl Into<String>) -> PickleError {
    PickleError(message.into())
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: Memo,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if self.input.len() - self.pos < n {
            return Err(refuse("pickle data was truncated"));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.le()?);
        usize::try_from(n).map_err(|_| refuse("pickle data was truncated"))
    }

    /// A text argument, up to its newline.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| refuse("pickle data was truncated (no end of line)"))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn text_line(&mut self) -> Result<&'a str, PickleError> {
        std::str::from_utf8(self.line()?).map_err(|_| refuse("a text argument is not ASCII"))
    }

    fn push(&mut self, node: Node) {
        self.stack.push(self.arena.len() as Id);
        self.arena.push(node);
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(refuse("unpickling stack underflow (at a mark)"));
        }
        self.stack
            .pop()
            .ok_or_else(|| refuse("unpickling stack underflow"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        match (self.stack.last(), self.marks.last()) {
            (Some(_), Some(&m)) if m >= self.stack.len() => {
                Err(refuse("unpickling stack underflow (at a mark)"))
            }
            (Some(&id), _) => Ok(id),
            (None, _) => Err(refuse("unpickling stack underflow")),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| refuse("could not find MARK"))?;
        Ok(self.stack.split_off(mark))
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                b'.' => return self.pop(),
                b'\x80' => {
                    let version = self.byte()?;
                    if version > 5 {
                        return Err(refuse(format!("unsupported pickle protocol: {version}")));
                    }
                }
                b'\x95' => {
                    self.le::<8>()?;
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.marks.last().is_some_and(|&m| m == self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                b'N' => self.push(Node::None),
                b'\x88' => self.push(Node::Bool(true)),
                b'\x89' => self.push(Node::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Node::Int(v.into()));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Node::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Node::Int(v.into()));
                }
                b'\x8a' => {
                    let n = self.byte()? as usize;
                    let bytes = self.take(n)?;
                    self.push(Node::Int(long_from_bytes(bytes)?));
                }
                b'\x8b' => {
                    let n = self.len_u32()?;
                    let bytes = self.take(n)?;
                    self.push(Node::Int(long_from_bytes(bytes)?));
                }
                b'I' => {
                    let text = self.text_line()?;
                    let node = match text {
                        "01" => Node::Bool(true),
                        "00" => Node::Bool(false),
                        _ => Node::Int(int_from_text(text)?),
                    };
                    self.push(node);
                }
                b'L' => {
                    let text = self.text_line()?;
                    let text = text.strip_suffix('L').unwrap_or(text);
                    self.push(Node::Int(int_from_text(text)?));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Node::Float(v));
                }
                b'F' => {
                    let text = self.text_line()?;
                    let v = text
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| refuse(format!("bad float {text:?}")))?;
                    self.push(Node::Float(v));
                }
                b'X' => {
                    let n = self.len_u32()?;
                    self.unicode(n)?;
                }
                b'\x8c' => {
                    let n = self.byte()? as usize;
                    self.unicode(n)?;
                }
                b'\x8d' => {
                    let n = self.len_u64()?;
                    self.unicode(n)?;
                }
                b'V' => {
                    let raw = self.line()?;
                    self.push(Node::Str(raw_unicode_escape(raw)?));
                }
                b'B' => {
                    let n = self.len_u32()?;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Node::Bytes(bytes));
                }
                b'C' => {
                    let n = self.byte()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Node::Bytes(bytes));
                }
                b'\x8e' => {
                    let n = self.len_u64()?;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Node::Bytes(bytes));
                }
                b'\x96' => {
                    let n = self.len_u64()?;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Node::ByteArray(bytes));
                }
                b'T' => {
                    let n = self.len_u32()?;
                    let bytes = self.take(n)?;
                    self.push(Node::Str(ascii(bytes)?));
                }
                b'U' => {
                    let n = self.byte()? as usize;
                    let bytes = self.take(n)?;
                    self.push(Node::Str(ascii(bytes)?));
                }
                b'S' => {
                    let raw = self.line()?;
                    self.push(Node::Str(quoted_string(raw)?));
                }
                b')' => self.push(Node::Tuple(Vec::new())),
                b'\x85' | b'\x86' | b'\x87' => {
                    let n = (op - b'\x84') as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.push(Node::Dict(pairs));
                }
                b'\x8f' => self.push(Node::Set(Vec::new())),
                b'\x91' => {
                    let items = self.pop_mark()?;
                    self.push(Node::FrozenSet(items));
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.extend(list, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend(list, items)?;
                }
                b'\x90' => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    match &mut self.arena[set as usize] {
                        Node::Set(elements) => elements.extend(items),
                        _ => return Err(refuse("ADDITEMS on something that is not a set")),
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, vec![(key, value)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    let pairs = pairs(&items)?;
                    self.set_items(dict, pairs)?;
                }
                b'p' => {
                    let key = self.text_line()?;
                    let key = key
                        .parse::<u32>()
                        .map_err(|_| refuse(format!("bad memo key {key:?}")))?;
                    let top = self.top()?;
                    self.memo.put(key, top);
                }
                b'q' => {
                    let key = self.byte()?.into();
                    let top = self.top()?;
                    self.memo.put(key, top);
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.le()?);
                    let top = self.top()?;
                    self.memo.put(key, top);
                }
                b'\x94' => {
                    let key =
                        u32::try_from(self.memo.len()).map_err(|_| refuse("the memo is full"))?;
                    let top = self.top()?;
                    self.memo.put(key, top);
                }
                b'g' => {
                    let key = self.text_line()?;
                    let key = key
                        .parse::<u32>()
                        .map_err(|_| refuse(format!("bad memo key {key:?}")))?;
                    let id = self.memo.get(key)?;
                    self.stack.push(id);
                }
                b'h' => {
                    let key = self.byte()?.into();
                    let id = self.memo.get(key)?;
                    self.stack.push(id);
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.le()?);
                    let id = self.memo.get(key)?;
                    self.stack.push(id);
                }
                b'c' => {
                    let module = self.text_line()?;
                    let name = self.text_line()?;
                    let global = allowed(module, name)?;
                    self.push(Node::Global(global));
                }
                b'\x93' => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.arena[module as usize], &self.arena[name as usize])
                    else {
                        return Err(refuse("STACK_GLOBAL requires str"));
                    };
                    let global = allowed(module, name)?;
                    self.push(Node::Global(global));
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let node = self.reduce(func, args)?;
                    self.push(node);
                }
                b'\x81' => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let node = self.new_object(class, args)?;
                    self.push(node);
                }
                b'\x92' => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    if !matches!(&self.arena[kwargs as usize], Node::Dict(d) if d.is_empty()) {
                        return Err(refuse("NEWOBJ_EX with keyword arguments is not supported"));
                    }
                    let node = self.new_object(class, args)?;
                    self.push(node);
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.top()?;
                    self.build(object, state)?;
                }
                b'P' | b'Q' => {
                    return Err(refuse(
                        "persistent IDs are not supported (nothing here can load them)",
                    ))
                }
                b'\x82' | b'\x83' | b'\x84' => {
                    return Err(refuse("extension codes (copyreg) are not supported"))
                }
                b'\x97' | b'\x98' => return Err(refuse("out-of-band buffers are not supported")),
                b'i' | b'o' => {
                    return Err(refuse(
                        "INST and OBJ (protocol 0/1 instances) are not supported",
                    ))
                }
                other => return Err(refuse(format!("invalid load key, {:?}.", other as char))),
            }
        }
    }

    fn unicode(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| refuse("a str is not valid UTF-8"))?
            .to_owned();
        self.push(Node::Str(text));
        Ok(())
    }

    fn extend(&mut self, list: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.arena[list as usize] {
            Node::List(elements) => {
                elements.extend(items);
                Ok(())
            }
            Node::Set(elements) => {
                elements.extend(items);
                Ok(())
            }
            _ => Err(refuse("APPEND on something that is not a list")),
        }
    }

    fn set_items(&mut self, dict: Id, items: Vec<(Id, Id)>) -> Result<(), PickleError> {
        match &mut self.arena[dict as usize] {
            Node::Dict(entries) => {
                entries.extend(items);
                Ok(())
            }
            _ => Err(refuse("SETITEM on something that is not a dict")),
        }
    }

    fn global(&self, id: Id) -> Result<Global, PickleError> {
        match self.arena[id as usize] {
            Node::Global(global) => Ok(global),
            _ => Err(refuse("only an allowed class can be called")),
        }
    }

    fn tuple(&self, id: Id) -> Result<&[Id], PickleError> {
        match &self.arena[id as usize] {
            Node::Tuple(items) => Ok(items),
            _ => Err(refuse("arguments must be a tuple")),
        }
    }

    fn int(&self, id: Id) -> Result<i128, PickleError> {
        match self.arena[id as usize] {
            Node::Int(i) => Ok(i),
            Node::Bool(b) => Ok(b.into()),
            _ => Err(refuse("an int was expected")),
        }
    }

    fn string(&self, id: Id) -> Result<&str, PickleError> {
        match &self.arena[id as usize] {
            Node::Str(s) => Ok(s),
            _ => Err(refuse("a str was expected")),
        }
    }

    /// The elements of a list, tuple or set argument.
    fn elements(&self, id: Id) -> Result<Vec<Id>, PickleError> {
        match &self.arena[id as usize] {
            Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
                Ok(items.clone())
            }
            _ => Err(refuse("a list or tuple was expected")),
        }
    }

    fn bytes_of(&self, id: Id) -> Result<Vec<u8>, PickleError> {
        match &self.arena[id as usize] {
            Node::Bytes(b) | Node::ByteArray(b) => Ok(b.clone()),
            _ => Err(refuse("bytes were expected")),
        }
    }

    /// `func(*args)` for an allowed `func`: the data it stands for.
    fn reduce(&mut self, func: Id, args: Id) -> Result<Node, PickleError> {
        let global = self.global(func)?;
        let args = self.tuple(args)?.to_vec();
        let arity = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                Err(refuse(format!(
                    "{global}() takes {n:?} arguments, {} given",
                    args.len()
                )))
            }
        };
        Ok(match global {
            Global::Slice => {
                arity(1..=3)?;
                let none = self.arena.len() as Id;
                self.arena.push(Node::None);
                match args[..] {
                    [stop] => Node::Slice([none, stop, none]),
                    [start, stop] => Node::Slice([start, stop, none]),
                    [start, stop, step] => Node::Slice([start, stop, step]),
                    _ => unreachable!("arity checked"),
                }
            }
            Global::Range => {
                arity(1..=3)?;
                let ints: Vec<i128> = args
                    .iter()
                    .map(|&a| self.int(a))
                    .collect::<Result<_, _>>()?;
                let (start, stop, step) = match ints[..] {
                    [stop] => (0, stop, 1),
                    [start, stop] => (start, stop, 1),
                    [start, stop, step] => (start, stop, step),
                    _ => unreachable!("arity checked"),
                };
                if step == 0 {
                    return Err(refuse("range() arg 3 must not be zero"));
                }
                Node::Range(Box::new([start, stop, step]))
            }
            Global::List | Global::Tuple | Global::Set | Global::FrozenSet => {
                arity(0..=1)?;
                let items = match args.first() {
                    Some(&a) => self.elements(a)?,
                    None => Vec::new(),
                };
                match global {
                    Global::List => Node::List(items),
                    Global::Tuple => Node::Tuple(items),
                    Global::Set => Node::Set(items),
                    _ => Node::FrozenSet(items),
                }
            }
            Global::Dict | Global::OrderedDict => {
                arity(0..=1)?;
                match args.first() {
                    None => Node::Dict(Vec::new()),
                    Some(&a) => match &self.arena[a as usize] {
                        Node::Dict(entries) => Node::Dict(entries.clone()),
                        _ => {
                            let mut entries = Vec::new();
                            for item in self.elements(a)? {
                                match self.tuple(item)? {
                                    &[k, v] => entries.push((k, v)),
                                    _ => return Err(refuse("dict() items must be pairs")),
                                }
                            }
                            Node::Dict(entries)
                        }
                    },
                }
            }
            Global::Bytes => {
                arity(0..=1)?;
                match args.first() {
                    None => Node::Bytes(Vec::new()),
                    Some(&a) => match &self.arena[a as usize] {
                        Node::Bytes(b) => Node::Bytes(b.clone()),
                        _ => Node::Bytes(self.byte_values(a)?),
                    },
                }
            }
            Global::ByteArray => {
                arity(0..=2)?;
                match args[..] {
                    [] => Node::ByteArray(Vec::new()),
                    [a] => match &self.arena[a as usize] {
                        Node::Bytes(b) | Node::ByteArray(b) => Node::ByteArray(b.clone()),
                        _ => Node::ByteArray(self.byte_values(a)?),
                    },
                    [text, encoding] => {
                        Node::ByteArray(latin1(self.string(text)?, self.string(encoding)?)?)
                    }
                    _ => unreachable!("arity checked"),
                }
            }
            Global::CodecsEncode => {
                arity(2..=2)?;
                Node::Bytes(latin1(self.string(args[0])?, self.string(args[1])?)?)
            }
            Global::Array => {
                arity(2..=2)?;
                let typecode = single_char(self.string(args[0])?)?;
                let items = match &self.arena[args[1] as usize] {
                    Node::Bytes(_) => {
                        let bytes = self.bytes_of(args[1])?;
                        let nodes = array_items(typecode, &bytes)?;
                        nodes
                            .into_iter()
                            .map(|node| {
                                self.arena.push(node);
                                (self.arena.len() - 1) as Id
                            })
                            .collect()
                    }
                    _ => self.elements(args[1])?,
                };
                Node::Array(typecode, items)
            }
            Global::ArrayReconstructor => {
                arity(4..=4)?;
                if self.global(args[0])? != Global::Array {
                    return Err(refuse("_array_reconstructor rebuilds array.array only"));
                }
                let typecode = single_char(self.string(args[1])?)?;
                let format = self.int(args[2])?;
                let bytes = self.bytes_of(args[3])?;
                let items = machine_items(format, &bytes)?
                    .into_iter()
                    .map(|node| {
                        self.arena.push(node);
                        (self.arena.len() - 1) as Id
                    })
                    .collect();
                Node::Array(typecode, items)
            }
            Global::RebuildProxy => {
                arity(4..=4)?;
                let class = self.global(args[0])?;
                if !class.is_proxy_class() {
                    return Err(refuse(format!("{class} is not a proxy class")));
                }
                if !matches!(self.arena[args[1] as usize], Node::Token(Some(_))) {
                    return Err(refuse("RebuildProxy needs a Token"));
                }
                self.string(args[2])?;
                if !matches!(self.arena[args[3] as usize], Node::Dict(_)) {
                    return Err(refuse("RebuildProxy needs a dict of keywords"));
                }
                Node::Proxy(class, [args[1], args[2], args[3]])
            }
            Global::Token => {
                arity(3..=3)?;
                Node::Token(Some([args[0], args[1], args[2]]))
            }
            exception if exception.is_exception() => Node::Exception(exception, args),
            other => return Err(refuse(format!("{other} cannot be called here"))),
        })
    }

    fn byte_values(&self, id: Id) -> Result<Vec<u8>, PickleError> {
        self.elements(id)?
            .into_iter()
            .map(|item| {
                u8::try_from(self.int(item)?).map_err(|_| refuse("bytes must be in range(0, 256)"))
            })
            .collect()
    }

    /// `cls.__new__(cls, *args)`.
    fn new_object(&mut self, class: Id, args: Id) -> Result<Node, PickleError> {
        let global = self.global(class)?;
        let args = self.tuple(args)?;
        match global {
            Global::Token if args.is_empty() => Ok(Node::Token(None)),
            Global::Namespace if args.is_empty() => Ok(Node::Namespace(None)),
            exception if exception.is_exception() => Ok(Node::Exception(exception, args.to_vec())),
            other => Err(refuse(format!("{other} cannot be created here"))),
        }
    }

    /// `obj.__setstate__(state)` for the few objects that have state.
    fn build(&mut self, object: Id, state: Id) -> Result<(), PickleError> {
        let fields = match &self.arena[state as usize] {
            Node::Tuple(items) if items.len() == 3 => Some([items[0], items[1], items[2]]),
            _ => None,
        };
        let is_dict = matches!(self.arena[state as usize], Node::Dict(_) | Node::None);
        match &mut self.arena[object as usize] {
            Node::Token(slot) => {
                *slot = Some(fields.ok_or_else(|| refuse("a Token's state is a 3-tuple"))?);
                Ok(())
            }
            Node::Namespace(slot) if is_dict => {
                *slot = Some(state);
                Ok(())
            }
            // An exception's `__dict__` (notes, attributes): not kept.
            Node::Exception(..) if is_dict => Ok(()),
            _ => Err(refuse("BUILD of an object that has no state here")),
        }
    }

    /// Turn the arena's object `id` into a tree, within the limits.
    fn resolve(
        &self,
        id: Id,
        depth: usize,
        limits: &Limits,
        budget: &mut usize,
    ) -> Result<Object, PickleError> {
        if depth > limits.max_depth {
            return Err(refuse(format!(
                "data nested more than {} levels deep (or recursive)",
                limits.max_depth
            )));
        }
        if *budget == 0 {
            return Err(refuse(format!(
                "data holds more than {} objects",
                limits.max_objects
            )));
        }
        *budget -= 1;
        let all = |ids: &[Id], budget: &mut usize| -> Result<Vec<Object>, PickleError> {
            let mut out = Vec::with_capacity(ids.len().min(*budget));
            for &item in ids {
                out.push(self.resolve(item, depth + 1, limits, budget)?);
            }
            Ok(out)
        };
        Ok(match &self.arena[id as usize] {
            Node::None => Object::None,
            Node::Bool(b) => Object::Bool(*b),
            Node::Int(i) => Object::Int(*i),
            Node::Float(f) => Object::Float(*f),
            Node::Str(s) => Object::Str(s.clone()),
            Node::Bytes(b) => Object::Bytes(b.clone()),
            Node::ByteArray(b) => Object::ByteArray(b.clone()),
            Node::List(items) => Object::List(all(items, budget)?),
            Node::Tuple(items) => Object::Tuple(all(items, budget)?),
            Node::Set(items) => Object::Set(all(items, budget)?),
            Node::FrozenSet(items) => Object::FrozenSet(all(items, budget)?),
            Node::Dict(entries) => {
                let mut out = Vec::with_capacity(entries.len().min(*budget));
                for &(k, v) in entries {
                    out.push((
                        self.resolve(k, depth + 1, limits, budget)?,
                        self.resolve(v, depth + 1, limits, budget)?,
                    ));
                }
                Object::Dict(out)
            }
            Node::Global(g) => Object::Global(*g),
            Node::Slice(parts) => {
                let [a, b, c] = all(parts, budget)?.try_into().expect("three parts");
                Object::Slice(Box::new([a, b, c]))
            }
            Node::Range(r) => {
                let [start, stop, step] = **r;
                let len = range_len(start, stop, step);
                if len > limits.max_range as u128 {
                    return Err(refuse(format!(
                        "range of {len} elements is more than the {} allowed",
                        limits.max_range
                    )));
                }
                Object::Range { start, stop, step }
            }
            Node::Array(typecode, items) => Object::Array {
                typecode: *typecode,
                items: all(items, budget)?,
            },
            Node::Token(fields) => Object::Token(Box::new(self.token(
                fields.as_ref(),
                depth,
                limits,
                budget,
            )?)),
            Node::Proxy(class, [token, serializer, kwds]) => {
                let Node::Token(fields) = &self.arena[*token as usize] else {
                    unreachable!("checked by reduce")
                };
                let token = self.token(fields.as_ref(), depth, limits, budget)?;
                let Object::Dict(kwds) = self.resolve(*kwds, depth + 1, limits, budget)? else {
                    unreachable!("checked by reduce")
                };
                Object::Proxy(Box::new(Proxy {
                    class: *class,
                    token,
                    serializer: self.string(*serializer)?.to_owned(),
                    kwds,
                }))
            }
            Node::Exception(class, args) => Object::Exception(Box::new(Exception {
                class: *class,
                args: all(args, budget)?,
            })),
            Node::Namespace(state) => {
                let mut attributes = Vec::new();
                if let Some(state) = state {
                    if let Object::Dict(entries) =
                        self.resolve(*state, depth + 1, limits, budget)?
                    {
                        for (k, v) in entries {
                            let Object::Str(name) = k else {
                                return Err(refuse("a Namespace's attribute names are str"));
                            };
                            attributes.push((name, v));
                        }
                    }
                }
                Object::Namespace(attributes)
            }
        })
    }

    fn token(
        &self,
        fields: Option<&[Id; 3]>,
        depth: usize,
        limits: &Limits,
        budget: &mut usize,
    ) -> Result<Token, PickleError> {
        let [typeid, address, id] = fields.ok_or_else(|| refuse("a Token without state"))?;
        Ok(Token {
            typeid: self.string(*typeid)?.to_owned(),
            address: self.resolve(*address, depth + 1, limits, budget)?,
            id: self.resolve(*id, depth + 1, limits, budget)?,
        })
    }
}

fn allowed(module: &str, name: &str) -> Result<Global, PickleError> {
    Global::lookup(module, name).ok_or_else(|| {
        refuse(format!(
            "global '{module}.{name}' is forbidden: this manager unpickles only plain data \
             and the manager's own types"
        ))
    })
}

fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>, PickleError> {
    if items.len() % 2 != 0 {
        return Err(refuse("odd number of items for a dict"));
    }
    Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
}

/// A little-endian two's-complement integer of at most 128 bits (leading
/// sign bytes beyond that are accepted).
fn long_from_bytes(bytes: &[u8]) -> Result<i128, PickleError> {
    if bytes.is_empty() {
        return Ok(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    let mut significant = bytes.len();
    while significant > 16 && bytes[significant - 1] == fill {
        significant -= 1;
    }
    if significant > 16 || (significant == 16 && (bytes[15] & 0x80 != 0) != negative) {
        return Err(refuse(format!(
            "int of {} bytes is too large: at most 128 bits are kept",
            bytes.len()
        )));
    }
    let mut full = [fill; 16];
    full[..significant.min(16)].copy_from_slice(&bytes[..significant.min(16)]);
    Ok(i128::from_le_bytes(full))
}

fn int_from_text(text: &str) -> Result<i128, PickleError> {
    text.trim().parse::<i128>().map_err(|_| {
        refuse(format!(
            "int {text:?} is not an integer of at most 128 bits"
        ))
    })
}

fn ascii(bytes: &[u8]) -> Result<String, PickleError> {
    if !bytes.is_ascii() {
        return Err(refuse("a Python 2 str holds non-ASCII bytes"));
    }
    Ok(String::from_utf8(bytes.to_vec()).expect("ASCII"))
}

/// Protocol 0's `STRING`: a quoted Python 2 literal.
fn quoted_string(raw: &[u8]) -> Result<String, PickleError> {
    let inner = match raw {
        [q, inner @ .., e] if q == e && (*q == b'\'' || *q == b'"') => inner,
        _ => return Err(refuse("the STRING opcode argument must be quoted")),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escape = *inner.get(i).ok_or_else(|| refuse("bad escape in STRING"))?;
        i += 1;
        out.push(match escape {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'0' => 0,
            b'\\' | b'\'' | b'"' => escape,
            b'x' => {
                let hex = inner
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| refuse("bad \\x escape in STRING"))?;
                i += 2;
                hex
            }
            _ => return Err(refuse("unsupported escape in STRING")),
        });
    }
    ascii(&out)
}

/// Protocol 0's `UNICODE`: raw-unicode-escape.
fn raw_unicode_escape(raw: &[u8]) -> Result<String, PickleError> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let digits = match (b, raw.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if digits == 0 {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let code = raw
            .get(i + 2..i + 2 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
            .ok_or_else(|| refuse("bad \\u escape in UNICODE"))?;
        out.push(code);
        i += 2 + digits;
    }
    Ok(out)
}

fn latin1(text: &str, encoding: &str) -> Result<Vec<u8>, PickleError> {
    if !matches!(encoding, "latin1" | "latin-1" | "iso-8859-1") {
        return Err(refuse(format!("encoding {encoding:?} is not supported")));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| refuse("text is not latin-1")))
        .collect()
}

fn single_char(text: &str) -> Result<char, PickleError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(refuse("an array's typecode is one character")),
    }
}

/// The elements of an `array.array` from its machine bytes (native,
/// little-endian layout, as `tobytes()` gives it on x86 and ARM).
fn array_items(typecode: char, bytes: &[u8]) -> Result<Vec<Node>, PickleError> {
    fn ints<const N: usize>(bytes: &[u8], signed: bool) -> Vec<Node> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut full = [0u8; 16];
                full[..N].copy_from_slice(c);
                if signed && c[N - 1] & 0x80 != 0 {
                    full[N..].fill(0xff);
                }
                Node::Int(i128::from_le_bytes(full))
            })
            .collect()
    }
    let size = match typecode {
        'b' | 'B' => 1,
        'h' | 'H' => 2,
        'i' | 'I' | 'f' | 'u' => 4,
        'l' | 'L' | 'q' | 'Q' | 'd' => 8,
        other => return Err(refuse(format!("bad typecode {other:?} for an array"))),
    };
    if bytes.len() % size != 0 {
        return Err(refuse("an array's bytes are not a whole number of items"));
    }
    Ok(match typecode {
        'b' => ints::<1>(bytes, true),
        'B' => ints::<1>(bytes, false),
        'h' => ints::<2>(bytes, true),
        'H' => ints::<2>(bytes, false),
        'i' => ints::<4>(bytes, true),
        'I' => ints::<4>(bytes, false),
        'l' | 'q' => ints::<8>(bytes, true),
        'L' | 'Q' => ints::<8>(bytes, false),
        'f' => bytes
            .chunks_exact(4)
            .map(|c| Node::Float(f32::from_le_bytes(c.try_into().expect("4")).into()))
            .collect(),
        'd' => bytes
            .chunks_exact(8)
            .map(|c| Node::Float(f64::from_le_bytes(c.try_into().expect("8"))))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| {
                let code = u32::from_le_bytes(c.try_into().expect("4"));
                char::from_u32(code)
                    .map(|c| Node::Str(c.to_string()))
                    .ok_or_else(|| refuse("an array holds an invalid character"))
            })
            .collect::<Result<_, _>>()?,
    })
}

/// The elements of an array from bytes in one of `array`'s machine
/// formats (`_array_reconstructor`'s `mformat_code`).
fn machine_items(format: i128, bytes: &[u8]) -> Result<Vec<Node>, PickleError> {
    // (size, signed or float kind, big-endian) by format code.
    let (size, kind, big) = match format {
        0 => (1, 'u', false),
        1 => (1, 's', false),
        2..=13 => {
            let n = format - 2;
            let size = [2, 4, 8][(n / 4) as usize];
            let kind = if n % 4 >= 2 { 's' } else { 'u' };
            (size, kind, n % 2 == 1)
        }
        14 | 15 => (4, 'f', format == 15),
        16 | 17 => (8, 'f', format == 17),
        20 | 21 => (4, 'c', format == 21),
        other => {
            return Err(refuse(format!(
                "array machine format {other} is not supported"
            )))
        }
    };
    if bytes.len() % size != 0 {
        return Err(refuse("an array's bytes are not a whole number of items"));
    }
    bytes
        .chunks_exact(size)
        .map(|chunk| {
            let mut le = chunk.to_vec();
            if big {
                le.reverse();
            }
            Ok(match (kind, size) {
                ('f', 4) => Node::Float(f32::from_le_bytes(le.try_into().expect("4")).into()),
                ('f', _) => Node::Float(f64::from_le_bytes(le.try_into().expect("8"))),
                ('c', _) => {
                    let code = u32::from_le_bytes(le.try_into().expect("4"));
                    Node::Str(
                        char::from_u32(code)
                            .ok_or_else(|| refuse("an array holds an invalid character"))?
                            .to_string(),
                    )
                }
                _ => {
                    let negative = kind == 's' && le[size - 1] & 0x80 != 0;
                    let mut full = [if negative { 0xff } else { 0 }; 16];
                    full[..size].copy_from_slice(&le);
                    Node::Int(i128::from_le_bytes(full))
                }
            })
        })
        .collect()
}

/// How many elements `range(start, stop, step)` has.
pub(crate) fn range_len(start: i128, stop: i128, step: i128) -> u128 {
    let (lo, hi) = if step > 0 {
        (start, stop)
    } else {
        (stop, start)
    };
    if hi <= lo {
        return 0;
    }
    let span = hi.abs_diff(lo);
    span.div_ceil(step.unsigned_abs())
}
