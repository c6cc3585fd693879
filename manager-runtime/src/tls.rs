//! TLS for TCP managers (feature `tls`, rustls with the ring provider).
//!
//! The authkey proves both sides belong to the same deployment, but it does
//! not hide the traffic: on a network you do not trust, wrap the connection
//! in TLS as well. The server presents a certificate ([`TlsServer`]); clients
//! verify it against a CA or the certificate itself ([`TlsClient`]). The
//! authkey handshake then runs inside the encrypted channel, unchanged.
#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what}: {e}"))
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error("certificate PEM", e))?;
    if certs.is_empty() {
        return Err(tls_error("certificate PEM", "no certificate found"));
    }
    Ok(certs)
}

/// A server's certificate chain and private key.
#[derive(Clone)]
pub struct TlsServer {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// Kept so a server started in a child process gets the same identity.
    pub(crate) pem: (Vec<u8>, Vec<u8>),
}

impl TlsServer {
    /// From a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<Self> {
        let key = PrivateKeyDer::from_pem_slice(private_key)
            .map_err(|e| tls_error("private key PEM", e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("configuration", e))?
            .with_no_client_auth()
            .with_single_cert(certificates(cert_chain)?, key)
            .map_err(|e| tls_error("server certificate", e))?;
        Ok(TlsServer {
            config: Arc::new(config),
            pem: (cert_chain.to_vec(), private_key.to_vec()),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer { .. }")
    }
}

/// What a client trusts, and the name it expects the server to prove.
#[derive(Clone)]
pub struct TlsClient {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    /// What it was made from, so that a child process can make it again
    /// for proxies it receives.
    pub(crate) pem: (Vec<u8>, String),
}

impl TlsClient {
    /// Trust the certificates in `ca_pem` (a CA, or the server's own
    /// self-signed certificate) for a server presenting `server_name`
    /// (a DNS name or an IP address in its certificate).
    pub fn from_ca_pem(ca_pem: &[u8], server_name: &str) -> Result<Self> {
        let server_name_text = server_name;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(ca_pem)? {
            roots
                .add(cert)
                .map_err(|e| tls_error("CA certificate", e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("configuration", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| tls_error("server name", e))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            pem: (ca_pem.to_vec(), server_name_text.to_string()),
        })
    }

    /// Wrap a connected blocking socket.
    pub(crate) fn wrap_blocking(
        &self,
        tcp: std::net::TcpStream,
    ) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
        let connection =
            rustls::ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
                .map_err(std::io::Error::other)?;
        Ok(rustls::StreamOwned::new(connection, tcp))
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient {{ server_name: {:?} }}", self.server_name)
    }
}
