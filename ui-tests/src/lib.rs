//! Compile-fail tests live in tests/ and ui/.
