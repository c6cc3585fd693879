//! Being written.

use crate::registry::Registry;

pub(crate) fn register(_registry: &mut Registry) {}
