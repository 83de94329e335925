//! The cache artifact: an OCI image manifest whose config blob (media type
//! [`CACHE_MEDIA_TYPE`]) is the canonical JSON map `layer key -> CacheRecord`
//! and whose layers are the records' layer blobs.
//!
//! Everything here is pure (bytes in, bytes out), so it is tested without a
//! registry or a file system. Decoding treats its input as hostile: a record
//! that does not parse, names a key that is not a key, or points at a blob
//! the manifest does not list is dropped and counted, never trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{CacheKey, Digest};
use crate::error::{Error, Result};
use crate::store::{CacheRecord, Descriptor, media_type};

/// Media type of the records blob, and the manifest's `artifactType`.
pub const CACHE_MEDIA_TYPE: &str = "application/vnd.strata.cache.v1+json";

/// Largest records blob accepted from a cache source.
pub const MAX_RECORDS: u64 = 64 << 20;

/// Imported or exported records, by layer key (sorted: canonical order).
pub type Records = BTreeMap<CacheKey, CacheRecord>;

/// The manifest of a cache artifact (an OCI image manifest with an
/// `artifactType`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl CacheManifest {
    /// The manifest for a records blob and its layers (sorted by digest,
    /// without duplicates, so equal records give equal bytes).
    pub fn new(records_blob: &[u8], layers: &[Descriptor]) -> CacheManifest {
        let mut by_digest: BTreeMap<Digest, Descriptor> = BTreeMap::new();
        for l in layers {
            by_digest.entry(l.digest).or_insert_with(|| Descriptor {
                annotations: None,
                platform: None,
                ..l.clone()
            });
        }
        CacheManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_string()),
            artifact_type: Some(CACHE_MEDIA_TYPE.to_string()),
            config: Descriptor::new(
                CACHE_MEDIA_TYPE,
                Digest::of(records_blob),
                records_blob.len() as u64,
            ),
            layers: by_digest.into_values().collect(),
        }
    }

    /// Serialized bytes (field order fixed by the struct).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::msg(format!("encoding JSON: {e}")))
    }

    /// Parses and checks a manifest received from a cache source.
    pub fn parse(bytes: &[u8], what: &str) -> Result<CacheManifest> {
        let m: CacheManifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(what.to_string(), e.to_string()))?;
        if m.schema_version != 2 {
            return Err(Error::corrupt(
                what.to_string(),
                format!("schemaVersion {} (expected 2)", m.schema_version),
            ));
        }
        if m.config.media_type != CACHE_MEDIA_TYPE {
            return Err(Error::msg(format!(
                "{what} is not a strata build cache (config media type `{}`, expected \
                 `{CACHE_MEDIA_TYPE}`)",
                m.config.media_type
            )));
        }
        if m.config.size > MAX_RECORDS {
            return Err(Error::corrupt(
                what.to_string(),
                format!("records blob of {} bytes is too large", m.config.size),
            ));
        }
        Ok(m)
    }
}

/// The canonical records blob: a JSON object sorted by key (structs in
/// field order, maps sorted, no `Debug` output).
pub fn encode_records(records: &Records) -> Result<Vec<u8>> {
    serde_json::to_vec(records).map_err(|e| Error::msg(format!("encoding JSON: {e}")))
}

/// `rec` with only the layer entries `keep` accepts; `None` when the record
/// had a layer and none is left.
pub fn filter_layers(
    rec: &CacheRecord,
    mut keep: impl FnMut(&Descriptor) -> bool,
) -> Option<CacheRecord> {
    let layers: BTreeMap<String, Descriptor> = rec
        .layers
        .iter()
        .filter(|(_, d)| keep(d))
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    if rec.diff_id.is_some() && layers.is_empty() {
        return None;
    }
    Some(CacheRecord {
        layers,
        ..rec.clone()
    })
}

/// What decoding dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub count: usize,
    /// The first reason, for the warning.
    pub first: Option<String>,
}

impl Dropped {
    fn add(&mut self, why: String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(why);
        }
    }
}

/// Decodes an untrusted records blob against its manifest's `layers`.
/// The blob must be a JSON object (else the whole import is refused); each
/// entry that is not a valid record is dropped. Layer entries must name a
/// blob the manifest lists with the same size and a layer media type.
pub fn decode_records(bytes: &[u8], layers: &[Descriptor]) -> Result<(Records, Dropped)> {
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt("cache records", e.to_string()))?;
    let listed: BTreeMap<Digest, &Descriptor> = layers.iter().map(|d| (d.digest, d)).collect();
    let mut out = Records::new();
    let mut dropped = Dropped::default();
    for (k, v) in raw {
        let Ok(key) = k.parse::<CacheKey>() else {
            dropped.add(format!("`{}` is not a cache key", truncate(&k)));
            continue;
        };
        let rec: CacheRecord = match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                dropped.add(format!("record {}: {e}", key.short()));
                continue;
            }
        };
        match check_record(&rec, &listed) {
            Ok(()) => {
                out.insert(key, rec);
            }
            Err(why) => dropped.add(format!("record {}: {why}", key.short())),
        }
    }
    Ok((out, dropped))
}

fn check_record(
    rec: &CacheRecord,
    listed: &BTreeMap<Digest, &Descriptor>,
) -> std::result::Result<(), String> {
    match (rec.diff_id, rec.layers.is_empty()) {
        (None, false) => return Err("layers without a diff_id".into()),
        (Some(_), true) => return Err("a diff_id without layers".into()),
        _ => {}
    }
    for (name, d) in &rec.layers {
        if !media_type::is_layer(&d.media_type) {
            return Err(format!("`{}` is not a layer media type", d.media_type));
        }
        match listed.get(&d.digest) {
            Some(l) if l.size == d.size && l.media_type == d.media_type => {}
            Some(_) => {
                return Err(format!(
                    "{name} layer {} differs from the manifest",
                    d.digest
                ));
            }
            None => return Err(format!("{name} layer {} is not in the manifest", d.digest)),
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(content: &[u8], mt: &str) -> Descriptor {
        Descriptor::new(mt, Digest::of(content), content.len() as u64)
    }

    fn record(l: &Descriptor) -> CacheRecord {
        CacheRecord {
            diff_id: Some(Digest::of(b"tar")),
            layers: [("gzip".to_string(), l.clone())].into_iter().collect(),
            created_by: "COPY a /a".into(),
            size: 3,
        }
    }

    #[test]
    fn records_round_trip_and_encoding_is_canonical() {
        let l = layer(b"one", media_type::OCI_LAYER_GZIP);
        let mut recs = Records::new();
        recs.insert(CacheKey([2; 32]), record(&l));
        recs.insert(CacheKey([1; 32]), record(&l));
        let bytes = encode_records(&recs).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.find(&CacheKey([1; 32]).hex()).unwrap()
                < text.find(&CacheKey([2; 32]).hex()).unwrap()
        );
        let (back, dropped) = decode_records(&bytes, std::slice::from_ref(&l)).unwrap();
        assert_eq!(back, recs);
        assert_eq!(dropped.count, 0);
        // Same records, same bytes, same manifest.
        let m1 = CacheManifest::new(&bytes, &[l.clone(), l.clone()]);
        assert_eq!(m1.layers.len(), 1, "layers are deduplicated");
        let again = encode_records(&back).unwrap();
        assert_eq!(
            m1.to_bytes().unwrap(),
            CacheManifest::new(&again, &[l]).to_bytes().unwrap()
        );
    }

    #[test]
    fn hostile_records_are_dropped_one_by_one() {
        let l = layer(b"one", media_type::OCI_LAYER_GZIP);
        let good = record(&l);
        let unlisted = record(&layer(b"two", media_type::OCI_LAYER_GZIP));
        let mut wrong_size = record(&l);
        wrong_size.layers.get_mut("gzip").unwrap().size = 99;
        let mut not_layer = record(&l);
        not_layer.layers.get_mut("gzip").unwrap().media_type = "text/plain".into();
        let mut no_diff = record(&l);
        no_diff.diff_id = None;
        let doc = serde_json::json!({
            CacheKey([1; 32]).hex(): good,
            CacheKey([2; 32]).hex(): unlisted,
            CacheKey([3; 32]).hex(): wrong_size,
            CacheKey([4; 32]).hex(): not_layer,
            CacheKey([5; 32]).hex(): no_diff,
            CacheKey([6; 32]).hex(): {"diff_id": "sha256:zz"},
            "../../etc/passwd": good,
        });
        let (recs, dropped) =
            decode_records(&serde_json::to_vec(&doc).unwrap(), std::slice::from_ref(&l)).unwrap();
        assert_eq!(recs.keys().collect::<Vec<_>>(), vec![&CacheKey([1; 32])]);
        assert_eq!(dropped.count, 6);
        assert!(dropped.first.is_some());
    }

    #[test]
    fn records_blob_that_is_not_an_object_is_refused() {
        for bad in [&b"["[..], b"[1,2]", b"\"x\"", b"\xff\xfe"] {
            assert!(decode_records(bad, &[]).is_err(), "{bad:?}");
        }
        let (recs, d) = decode_records(b"{}", &[]).unwrap();
        assert!(recs.is_empty() && d.count == 0);
    }

    #[test]
    fn a_record_without_layer_is_kept_and_filtering_drops_emptied_records() {
        let empty = CacheRecord {
            diff_id: None,
            layers: BTreeMap::new(),
            created_by: "RUN true".into(),
            size: 0,
        };
        let doc = serde_json::json!({ CacheKey([9; 32]).hex(): empty });
        let (recs, _) = decode_records(&serde_json::to_vec(&doc).unwrap(), &[]).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(filter_layers(&empty, |_| false), Some(empty.clone()));
        let l = layer(b"one", media_type::OCI_LAYER_GZIP);
        let mut two = record(&l);
        let z = layer(b"z", media_type::OCI_LAYER_ZSTD);
        two.layers.insert("zstd".into(), z.clone());
        let only_z = filter_layers(&two, |d| d.digest == z.digest).unwrap();
        assert_eq!(only_z.layers.keys().collect::<Vec<_>>(), vec!["zstd"]);
        assert_eq!(filter_layers(&two, |_| false), None);
    }

    #[test]
    fn manifests_of_other_kinds_are_refused() {
        let bytes = encode_records(&Records::new()).unwrap();
        let m = CacheManifest::new(&bytes, &[]);
        let ok = m.to_bytes().unwrap();
        assert_eq!(CacheManifest::parse(&ok, "m").unwrap(), m);
        let mut image = m.clone();
        image.config.media_type = media_type::OCI_CONFIG.into();
        assert!(CacheManifest::parse(&image.to_bytes().unwrap(), "m").is_err());
        let mut big = m.clone();
        big.config.size = MAX_RECORDS + 1;
        assert!(CacheManifest::parse(&big.to_bytes().unwrap(), "m").is_err());
        assert!(CacheManifest::parse(b"{", "m").is_err());
        let v: serde_json::Value = serde_json::from_slice(&ok).unwrap();
        assert_eq!(v["artifactType"], CACHE_MEDIA_TYPE);
        assert_eq!(v["mediaType"], media_type::OCI_MANIFEST);
    }
}
