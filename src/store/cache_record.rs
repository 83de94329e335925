//! What the build cache remembers about one step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::store::Descriptor;

/// The result of one cached step: its layer (if any) in each compression
/// it has been stored in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The uncompressed layer digest; `None` for a step that produced no layer.
    pub diff_id: Option<Digest>,
    /// Compression name (`"gzip"`, `"zstd"`, `"none"`) -> compressed blob.
    pub layers: BTreeMap<String, Descriptor>,
    pub created_by: String,
    /// Uncompressed size in bytes.
    pub size: u64,
}
