//! Being written.

use crate::registry::Registry;

/// Server-side objects of this family.
pub mod server {}

/// Typed proxies of this family.
pub mod typed {}

pub(crate) fn register(_registry: &mut Registry) {}
