#![forbid(unsafe_code)]
use super::*;

fn round_trip(obj: &Object) {
    let bytes = encode(obj);
    assert_eq!(&decode(&bytes).unwrap(), obj, "{bytes:02x?}");
}

#[test]
fn plain_data_round_trips() {
    let values = [
        Object::None,
        Object::Bool(true),
        Object::Int(0),
        Object::Int(255),
        Object::Int(256),
        Object::Int(65536),
        Object::Int(-1),
        Object::Int(i64::MAX.into()),
        Object::Int(i128::MIN),
        Object::Int(i128::MAX),
        Object::Int(128),
        Object::Int(-129),
        Object::Float(-2.25),
        Object::str("hällo"),
        Object::str("x".repeat(300)),
        Object::Bytes(vec![0, 255]),
        Object::ByteArray(vec![1, 2]),
        Object::List(vec![Object::Int(1), Object::List(vec![])]),
        Object::Tuple(vec![]),
        Object::Tuple(vec![Object::Int(1); 5]),
        Object::Dict(vec![(Object::str("a"), Object::None)]),
        Object::Set(vec![Object::Int(3)]),
        Object::FrozenSet(vec![]),
        Object::Slice(Box::new([Object::Int(1), Object::None, Object::Int(-1)])),
        Object::Range {
            start: 1,
            stop: 10,
            step: 3,
        },
        Object::Namespace(vec![("name".into(), Object::str("Bob"))]),
        Object::Exception(Box::new(Exception::new(Global::KeyError, "k"))),
        Object::Global(Global::QueueEmpty),
    ];
    for value in &values {
        round_trip(value);
    }
    let token = Token {
        typeid: "dict".into(),
        address: Object::Tuple(vec![Object::str("127.0.0.1"), Object::Int(5)]),
        id: Object::str("1f"),
    };
    round_trip(&Object::Token(Box::new(token.clone())));
    round_trip(&Object::Proxy(Box::new(Proxy {
        class: Global::AutoProxy,
        token,
        serializer: "pickle".into(),
        kwds: vec![(
            Object::str("exposed"),
            Object::Tuple(vec![Object::str("get")]),
        )],
    })));
}

#[test]
fn forbidden_globals_are_refused_before_anything_runs() {
    // pickle.dumps(os.system) and a REDUCE calling it, protocol 0 and 4.
    let cases: [&[u8]; 3] = [
        b"cposix\nsystem\n(S'echo hi'\ntR.",
        b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.",
        b"cbuiltins\neval\n(S'1'\ntR.",
    ];
    for case in cases {
        let err = decode(case).unwrap_err();
        assert!(err.0.contains("is forbidden"), "{err}");
    }
    // An allowed class used for something else is refused too.
    assert!(decode(b"cbuiltins\nKeyError\n(cbuiltins\nlist\ntR.").is_ok());
    assert!(decode(b"cmultiprocessing.managers\nAutoProxy\n(tR.").is_err());
}

#[test]
fn limits_hold() {
    // 200 nested lists.
    let mut deep = b"\x80\x04".to_vec();
    deep.extend(std::iter::repeat_n(b']', 200));
    deep.extend(std::iter::repeat_n(b'a', 199));
    deep.push(b'.');
    assert!(decode(&deep).unwrap_err().0.contains("nested"));
    // A list that contains itself.
    let recursive = b"\x80\x04]\x94h\x00a.";
    assert!(decode(recursive).is_err());
    // "Billion laughs": each level holds the previous one twice.
    let mut laughs = b"\x80\x04]".to_vec();
    for _ in 0..40 {
        laughs.extend_from_slice(b"\x94(h\x00h\x00l");
        // re-memoize at key 0 the new list
        laughs.extend_from_slice(b"q\x00");
    }
    laughs.push(b'.');
    let err = decode(&laughs).unwrap_err();
    assert!(err.0.contains("objects"), "{err}");
    // A huge range is refused; a small one is data.
    assert!(decode(b"cbuiltins\nrange\n(I0\nI100000000000\ntR.").is_err());
    assert!(decode(b"cbuiltins\nrange\n(I0\nI3\ntR.").is_ok());
    // Ints of more than 128 bits.
    let mut big = b"\x80\x04\x8a\x11".to_vec();
    big.extend_from_slice(&[1; 17]);
    big.push(b'.');
    assert!(decode(&big).unwrap_err().0.contains("too large"));
    // Lengths beyond the input allocate nothing and fail.
    assert!(decode(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.").is_err());
    assert!(decode(b"\x80\x04X\xff\xff\xff\xff.").is_err());
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: [&[u8]; 12] = [
        b"",
        b".",
        b"\x80\x09N.",
        b"(.",
        b"a.",
        b"N(a.",
        b"0.",
        b"h\x05.",
        b"\x93.",
        b"NNR.",
        b"\x8c\x02\xff\xfe.",
        b"}Ns.",
    ];
    for case in cases {
        assert!(decode(case).is_err(), "{case:?}");
    }
}
