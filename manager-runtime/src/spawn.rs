//! Process start-up (stub, being written).
#![allow(missing_docs, unused)]
use std::time::Duration;
use crate::address::Address;
use crate::error::Result;
use crate::manager::ManagerOptions;
use crate::registry::Registry;
pub(crate) fn process_authkey() -> &'static [u8] { todo!() }
pub(crate) struct Running { pub(crate) address: Address }
impl Running { pub(crate) fn stop(self, timeout: Duration) -> Result<()> { todo!() } }
pub(crate) fn start_process(registry: fn() -> Registry, options: &ManagerOptions, initializer: Option<fn()>) -> Result<Running> { todo!() }
pub(crate) fn start_thread(registry: Registry, options: &ManagerOptions) -> Result<Running> { todo!() }
pub fn bootstrap() {}
