//! What Python's `type()`, `repr()` and `bool()` say about a value.
#![forbid(unsafe_code)]

use std::fmt::Write;

use super::Value;

impl Value {
    /// Python's name for the value's type: `"NoneType"`, `"bool"`, `"int"`,
    /// `"float"`, `"str"`, `"bytes"`, `"list"`, `"dict"`, or `"proxy"` for a
    /// token.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "dict",
            Value::Token(_) => "proxy",
        }
    }

    /// The value's kind as error messages name it: "an integer", "a string".
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Token(_) => "a proxy token",
        }
    }

    /// Python's truth value: `None`, `False`, zero and empty containers are
    /// false, everything else (NaN and proxies included) is true.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(items) => !items.is_empty(),
            Value::Map(entries) => !entries.is_empty(),
            Value::Token(_) => true,
        }
    }

    /// Python's `repr()`: `None`, `True`, `10`, `2.25`, `'Bob'`, `b'\x00'`,
    /// `[1, 2]`, `{'a': 1}`, and `<Proxy typeid 'list' id 3 at ADDRESS>` for
    /// a token. Which non-ASCII characters a string escapes is an
    /// approximation of Python's "printable".
    ///
    /// ```
    /// use manager_runtime::value::{to_value, Value};
    ///
    /// assert_eq!(Value::from("Bob").repr(), "'Bob'");
    /// assert_eq!(to_value(&vec![(1, 2.5)]).unwrap().repr(), "[[1, 2.5]]");
    /// ```
    pub fn repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => write!(out, "{i}").expect("writing to a String"),
            Value::Float(f) => float_repr(*f, out),
            Value::Str(s) => str_repr(s, out),
            Value::Bytes(b) => bytes_repr(b, out),
            Value::List(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (n, (k, v)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
            Value::Token(token) => write!(out, "<Proxy {token}>").expect("writing to a String"),
        }
    }
}

/// Python's float repr: the shortest digits that read back as the same
/// float, positional for exponents -4 to 15 (`0.0001`, `1e+16`).
fn float_repr(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest digits that read back as `f`, laid
    // out as "-1.2345e-5". When two such strings are equally close, Python
    // takes the correctly rounded one (half to even), which `{:.N$e}` gives.
    let shortest = format!("{f:e}");
    let e = shortest.find('e').expect("`{:e}` has an exponent");
    let precision = shortest.find('.').map_or(0, |point| e - point - 1);
    let rounded = format!("{f:.precision$e}");
    let sci = if rounded.parse::<f64>() == Ok(f) {
        rounded
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` has an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            if digits.len() > point {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            } else {
                out.push_str(digits);
                out.push_str(&"0".repeat(point - digits.len()));
                out.push_str(".0");
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{exp_sign}{:02}", exp.unsigned_abs()).expect("writing to a String");
    }
}

/// Python quotes with `'` unless the text holds a `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn str_repr(s: &str, out: &mut String) {
    let quote = quote_for(s.contains('\''), s.contains('"'));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                let written = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
                written.expect("writing to a String");
            }
        }
    }
    out.push(quote);
}

/// Roughly Python's `str.isprintable()` for one non-ASCII character: not a
/// control, separator or common format character.
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

fn bytes_repr(b: &[u8], out: &mut String) {
    let quote = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if char::from(c) == quote => {
                out.push('\\');
                out.push(quote);
            }
            b' '..=b'~' => out.push(char::from(byte)),
            _ => write!(out, "\\x{byte:02x}").expect("writing to a String"),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        Value::Float(f).repr()
    }

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(float(2.25), "2.25");
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.0), "0.0");
        assert_eq!(float(-0.0), "-0.0");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(-1.5), "-1.5");
        assert_eq!(float(100.0), "100.0");
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(0.00001), "1e-05");
        assert_eq!(float(1.5e-7), "1.5e-07");
        assert_eq!(float(1e15), "1000000000000000.0");
        assert_eq!(float(1e16), "1e+16");
        assert_eq!(float(1.2345678901234568e17), "1.2345678901234568e+17");
        assert_eq!(float(1e300), "1e+300");
        assert_eq!(float(123.456), "123.456");
        // Two shortest candidates, .2 and .3: Python rounds half to even.
        let tie = -1462468587316101.0 - 0.25;
        assert_eq!(float(tie), "-1462468587316101.2");
        assert_eq!(float(f64::INFINITY), "inf");
        assert_eq!(float(f64::NEG_INFINITY), "-inf");
        assert_eq!(float(f64::NAN), "nan");
    }

    #[test]
    fn strings_quote_and_escape_as_python_does() {
        assert_eq!(Value::from("Bob").repr(), "'Bob'");
        assert_eq!(Value::from("it's").repr(), "\"it's\"");
        assert_eq!(Value::from("'\"").repr(), "'\\'\"'");
        assert_eq!(Value::from("a\\b\n\t\x01").repr(), "'a\\\\b\\n\\t\\x01'");
        assert_eq!(Value::from("héllo ✓").repr(), "'héllo ✓'");
        assert_eq!(Value::from("\u{a0}\u{2028}").repr(), "'\\xa0\\u2028'");
        assert_eq!(Value::from("\u{7f}").repr(), "'\\x7f'");
    }

    #[test]
    fn bytes_print_as_python_does() {
        assert_eq!(
            Value::Bytes(b"ab\x00\xff'".to_vec()).repr(),
            "b\"ab\\x00\\xff'\""
        );
        assert_eq!(Value::Bytes(b"\\\n".to_vec()).repr(), "b'\\\\\\n'");
        assert_eq!(Value::Bytes(Vec::new()).repr(), "b''");
    }

    #[test]
    fn containers_and_singletons() {
        let v = Value::Map(vec![
            ("a".into(), Value::Int(1)),
            (
                "b".into(),
                Value::List(vec![Value::None, true.into(), 10.into()]),
            ),
            (Value::Int(3), Value::Map(Vec::new())),
        ]);
        assert_eq!(v.repr(), "{'a': 1, 'b': [None, True, 10], 3: {}}");
        assert_eq!(Value::Bool(false).repr(), "False");
        assert_eq!(Value::Int(-7).repr(), "-7");
        assert_eq!(Value::List(Vec::new()).repr(), "[]");
    }

    #[test]
    fn type_names_and_truth() {
        assert_eq!(Value::None.type_name(), "NoneType");
        assert_eq!(Value::Map(Vec::new()).type_name(), "dict");
        assert_eq!(Value::Float(1.0).type_name(), "float");
        assert!(!Value::None.is_truthy());
        assert!(!Value::Int(0).is_truthy());
        assert!(!Value::Float(-0.0).is_truthy());
        assert!(Value::Float(f64::NAN).is_truthy());
        assert!(!Value::from("").is_truthy());
        assert!(Value::from("x").is_truthy());
        assert!(!Value::List(Vec::new()).is_truthy());
        assert!(Value::List(vec![Value::None]).is_truthy());
    }
}
