//! Where a manager listens: a TCP address or a Unix socket path.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A manager's address.
///
/// Parsed from text as `host:port` for TCP (`127.0.0.1:50000`, `[::1]:50000`)
/// or as a path for a Unix socket (anything containing `/`, or prefixed
/// `unix:`).
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::{Address, Error};
/// let tcp: Address = "127.0.0.1:50000".parse().unwrap();
/// assert!(matches!(tcp, Address::Tcp(_)));
/// let unix: Address = "/run/app/manager.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/run/app/manager.sock");
/// assert!(matches!(
///     "localhost".parse::<Address>(),
///     Err(Error::InvalidAddress { .. })
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// TCP; port 0 asks the OS for a free port when binding.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>()
            .map(Address::Tcp)
            .map_err(|e| Error::InvalidAddress {
                text: s.to_string(),
                reason: e.to_string(),
            })
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr)
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Address::Unix(path)
    }
}

/// Anything that names an address: `&str`, `String`, `SocketAddr`,
/// `PathBuf` or an [`Address`].
pub trait ToAddress {
    /// Turn `self` into an [`Address`].
    fn to_address(&self) -> Result<Address, Error>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address, Error> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address, Error> {
        self.parse()
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address, Error> {
        self.parse()
    }
}

impl ToAddress for SocketAddr {
    fn to_address(&self) -> Result<Address, Error> {
        Ok(Address::Tcp(*self))
    }
}

impl ToAddress for PathBuf {
    fn to_address(&self) -> Result<Address, Error> {
        Ok(Address::Unix(self.clone()))
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address, Error> {
        (**self).to_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            "127.0.0.1:50000".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(
            "/tmp/x.sock".parse::<Address>().unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            "unix:rel.sock".parse::<Address>().unwrap(),
            Address::Unix("rel.sock".into())
        );
        assert!("nonsense".parse::<Address>().is_err());
    }
}
