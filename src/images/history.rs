//! `strata history`: one row per history entry of an image config.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::error::Result;
use crate::oci::Image;
use crate::store::Store;

use super::parse_rfc3339;

/// One history entry, with the layer it made (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    /// The layer's diff_id; `None` for an empty_layer / metadata-only entry.
    pub layer: Option<Digest>,
    /// Unix time of `created`, when it parses.
    pub created: Option<i64>,
    pub created_by: String,
    /// Uncompressed size when a cache record knows it, else the compressed
    /// blob size; 0 for entries without a layer.
    pub size: u64,
    pub comment: String,
}

/// The history of `image`, newest first. Layers the history does not
/// account for (a config without history) get rows of their own.
pub fn history(store: &Store, image: &Image) -> Result<Vec<HistoryRow>> {
    let mut uncompressed: BTreeMap<Digest, u64> = BTreeMap::new();
    for e in store.cache_entries()? {
        if let Some(r) = e.record
            && let Some(d) = r.diff_id
        {
            uncompressed.insert(d, r.size);
        }
    }
    let diff_ids = &image.config.rootfs.diff_ids;
    let layer_row = |i: usize| -> (Option<Digest>, u64) {
        let Some(d) = diff_ids.get(i) else {
            return (None, 0);
        };
        let size = uncompressed
            .get(d)
            .copied()
            .or_else(|| image.layers.get(i).map(|l| l.size))
            .unwrap_or(0);
        (Some(*d), size)
    };
    let mut rows = Vec::new();
    let mut next_layer = 0;
    for h in &image.config.history {
        let (layer, size) = if h.empty_layer {
            (None, 0)
        } else {
            next_layer += 1;
            layer_row(next_layer - 1)
        };
        rows.push(HistoryRow {
            layer,
            created: h.created.as_deref().and_then(parse_rfc3339),
            created_by: h.created_by.clone().unwrap_or_default(),
            size,
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    while next_layer < diff_ids.len() {
        let (layer, size) = layer_row(next_layer);
        rows.push(HistoryRow {
            layer,
            created: None,
            created_by: String::new(),
            size,
            comment: String::new(),
        });
        next_layer += 1;
    }
    rows.reverse();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{History, ImageConfig};
    use crate::store::{CacheRecord, Descriptor, media_type};

    #[test]
    fn rows_are_newest_first_and_sized_from_cache_records() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let (d1, d2) = (Digest::of(b"layer1"), Digest::of(b"layer2"));
        let (b1, b2) = (Digest::of(b"blob1"), Digest::of(b"blob2"));
        let rec = CacheRecord {
            diff_id: Some(d2),
            layers: [(
                "gzip".to_string(),
                Descriptor::new(media_type::OCI_LAYER_GZIP, b2, 7),
            )]
            .into_iter()
            .collect(),
            created_by: String::new(),
            size: 4096,
        };
        store
            .put_cache(&crate::digest::CacheKey([9; 32]), &rec)
            .unwrap();
        let mut config = ImageConfig::scratch(None);
        config.rootfs.diff_ids = vec![d1, d2];
        let h = |by: &str, empty: bool| History {
            created: Some("1970-01-01T00:01:00Z".into()),
            created_by: Some(by.into()),
            comment: Some("strata".into()),
            empty_layer: empty,
            ..History::default()
        };
        config.history = vec![h("COPY a", false), h("ENV x=1", true), h("COPY b", false)];
        let image = Image {
            manifest: Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"m"), 1),
            config,
            config_digest: Digest::of(b"c"),
            layers: vec![
                Descriptor::new(media_type::OCI_LAYER_GZIP, b1, 11),
                Descriptor::new(media_type::OCI_LAYER_GZIP, b2, 7),
            ],
        };
        let rows = history(&store, &image).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.layer, r.created_by.as_str(), r.size))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(d2), "COPY b", 4096), // record's uncompressed size
                (None, "ENV x=1", 0),
                (Some(d1), "COPY a", 11), // no record: blob size
            ]
        );
        assert!(rows.iter().all(|r| r.created == Some(60)));
    }
}
