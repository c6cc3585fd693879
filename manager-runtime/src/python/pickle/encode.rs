//! The pickler: an [`Object`] as protocol 4, without a memo or frames
//! (both optional for the reader), so every occurrence of a value is
//! written out and read back as its own object.
#![forbid(unsafe_code)]

use super::{Global, Object, Token};

/// `obj` as a protocol 4 pickle.
pub fn encode(obj: &Object) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(obj, &mut out);
    out
}

/// Append `obj` as a protocol 4 pickle to `out`.
pub fn encode_into(obj: &Object, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x80, 4]);
    write(obj, out);
    out.push(b'.');
}

const MARK: u8 = b'(';
const EMPTY_TUPLE: u8 = b')';
const REDUCE: u8 = b'R';
const NEWOBJ: u8 = 0x81;
const BUILD: u8 = b'b';

fn write(obj: &Object, out: &mut Vec<u8>) {
    match obj {
        Object::None => out.push(b'N'),
        Object::Bool(true) => out.push(0x88),
        Object::Bool(false) => out.push(0x89),
        Object::Int(i) => int(*i, out),
        Object::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Object::Str(s) => string(s, out),
        Object::Bytes(b) => bytes(b, out),
        Object::ByteArray(b) => {
            global(Global::ByteArray, out);
            bytes(b, out);
            out.extend_from_slice(&[0x85, REDUCE]);
        }
        Object::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(MARK);
                items.iter().for_each(|item| write(item, out));
                out.push(b'e');
            }
        }
        Object::Tuple(items) => tuple(items, out),
        Object::Dict(entries) => {
            out.push(b'}');
            if !entries.is_empty() {
                out.push(MARK);
                for (k, v) in entries {
                    write(k, out);
                    write(v, out);
                }
                out.push(b'u');
            }
        }
        Object::Set(items) => {
            out.push(0x8f);
            if !items.is_empty() {
                out.push(MARK);
                items.iter().for_each(|item| write(item, out));
                out.push(0x90);
            }
        }
        Object::FrozenSet(items) => {
            out.push(MARK);
            items.iter().for_each(|item| write(item, out));
            out.push(0x91);
        }
        Object::Slice(parts) => call(Global::Slice, &parts[..], out),
        Object::Range { start, stop, step } => call(
            Global::Range,
            &[Object::Int(*start), Object::Int(*stop), Object::Int(*step)],
            out,
        ),
        Object::Array { typecode, items } => {
            global(Global::Array, out);
            string(&typecode.to_string(), out);
            write(&Object::List(items.clone()), out);
            out.extend_from_slice(&[0x86, REDUCE]);
        }
        Object::Token(token) => write_token(token, out),
        Object::Proxy(proxy) => {
            global(Global::RebuildProxy, out);
            out.push(MARK);
            global(proxy.class, out);
            write_token(&proxy.token, out);
            string(&proxy.serializer, out);
            write(&Object::Dict(proxy.kwds.clone()), out);
            out.extend_from_slice(&[b't', REDUCE]);
        }
        Object::Exception(exception) => call(exception.class, &exception.args, out),
        Object::Namespace(attributes) => {
            global(Global::Namespace, out);
            out.extend_from_slice(&[EMPTY_TUPLE, NEWOBJ]);
            let state = attributes
                .iter()
                .map(|(k, v)| (Object::str(k.as_str()), v.clone()))
                .collect();
            write(&Object::Dict(state), out);
            out.push(BUILD);
        }
        Object::Global(g) => global(*g, out),
    }
}

/// `func(*args)`.
fn call(func: Global, args: &[Object], out: &mut Vec<u8>) {
    global(func, out);
    tuple(args, out);
    out.push(REDUCE);
}

fn write_token(token: &Token, out: &mut Vec<u8>) {
    global(Global::Token, out);
    out.extend_from_slice(&[EMPTY_TUPLE, NEWOBJ]);
    string(&token.typeid, out);
    write(&token.address, out);
    write(&token.id, out);
    out.extend_from_slice(&[0x87, BUILD]);
}

fn global(g: Global, out: &mut Vec<u8>) {
    let (module, name) = g.path();
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn tuple(items: &[Object], out: &mut Vec<u8>) {
    match items.len() {
        0 => out.push(EMPTY_TUPLE),
        n @ 1..=3 => {
            items.iter().for_each(|item| write(item, out));
            out.push(0x84 + n as u8);
        }
        _ => {
            out.push(MARK);
            items.iter().for_each(|item| write(item, out));
            out.push(b't');
        }
    }
}

fn int(i: i128, out: &mut Vec<u8>) {
    if let Ok(small) = u8::try_from(i) {
        out.extend_from_slice(&[b'K', small]);
    } else if let Ok(medium) = u16::try_from(i) {
        out.push(b'M');
        out.extend_from_slice(&medium.to_le_bytes());
    } else if let Ok(word) = i32::try_from(i) {
        out.push(b'J');
        out.extend_from_slice(&word.to_le_bytes());
    } else {
        // LONG1: the shortest two's-complement little-endian form.
        let bytes = i.to_le_bytes();
        let fill = if i < 0 { 0xff } else { 0x00 };
        let mut len = 16;
        while len > 1 && bytes[len - 1] == fill && (bytes[len - 2] & 0x80 != 0) == (i < 0) {
            len -= 1;
        }
        out.extend_from_slice(&[0x8a, len as u8]);
        out.extend_from_slice(&bytes[..len]);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    let len = s.len();
    if len < 256 {
        out.extend_from_slice(&[0x8c, len as u8]);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(b'X');
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.push(0x8d);
        out.extend_from_slice(&(len as u64).to_le_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    let len = b.len();
    if len < 256 {
        out.extend_from_slice(&[b'C', len as u8]);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(b'B');
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.push(0x8e);
        out.extend_from_slice(&(len as u64).to_le_bytes());
    }
    out.extend_from_slice(b);
}
