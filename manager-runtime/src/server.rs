//! Server (stub, being written).
#![allow(missing_docs, unused)]
use std::sync::Arc;
use crate::error::Result;
use crate::manager::ManagerOptions;
use crate::object::Object;
use crate::proxy::Token;
use crate::registry::Registry;
pub(crate) struct ServerState {}
impl ServerState {
    pub(crate) fn insert_for(&self, session: u128, object: Arc<dyn Object>, typeid: &'static str) -> Token { todo!() }
}
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DebugEntry { pub id: u64, pub typeid: String, pub refcount: u64 }
pub struct Server {}
impl Server {
    pub(crate) fn bind(registry: Registry, options: &ManagerOptions) -> Result<Server> { todo!() }
    pub fn serve_forever(self) -> Result<()> { todo!() }
}
