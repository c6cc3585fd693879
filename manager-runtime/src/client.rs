//! Client sessions (stub, being written).
#![allow(missing_docs, unused)]
use serde::Serialize;
use crate::address::Address;
use crate::error::Result;
use crate::manager::ManagerOptions;
use crate::proxy::{Proxy, Token};
use crate::server::DebugEntry;

#[derive(Clone)]
pub struct Client {}
impl Client {
    pub(crate) fn connect(address: Address, options: &ManagerOptions) -> Result<Client> { todo!() }
    pub(crate) fn retain(&self, id: u64, server_refs: u64) { todo!() }
    pub(crate) fn release(&self, id: u64) { todo!() }
    pub(crate) fn incref(&self, token: &Token) -> Result<()> { todo!() }
    pub(crate) fn call<A: Serialize, R>(&self, object: u64, method: &str, fingerprint: u64, args: &A, decode: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> { todo!() }
    pub(crate) async fn call_async<A: Serialize>(&self, object: u64, method: &str, fingerprint: u64, args: &A) -> Result<Vec<u8>> { todo!() }
    pub fn create<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> { todo!() }
    pub async fn create_async<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> { todo!() }
    pub fn number_of_objects(&self) -> Result<usize> { todo!() }
    pub fn debug_info(&self) -> Result<Vec<DebugEntry>> { todo!() }
}
