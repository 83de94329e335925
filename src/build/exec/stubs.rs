//! The directories a RUN leaves in its layer when the image lacks them.
//!
//! An OCI runtime creates the mount points `/dev`, `/proc`, `/sys` and `/etc`
//! (for `/etc/hosts` and `/etc/resolv.conf`) in the container's root
//! filesystem, so after a RUN on an image without them, BuildKit's and
//! buildah's layer holds them (0755, root). strata's sandbox mounts on a
//! throw-away lowerdir instead, so they are added to the layer here, and
//! only for the build's RUN steps (a `strata run --commit` keeps them out,
//! as `docker commit` does).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The mount points a runtime creates at the root.
const ROOTS: [&str; 4] = ["dev", "etc", "proc", "sys"];

/// Which of [`ROOTS`] the image (`lowerdirs`, top first, overlay-style
/// snapshots) lacks: the topmost layer naming a path decides, and a
/// whiteout there means absent.
pub(super) fn missing(lowerdirs: &[PathBuf]) -> Vec<&'static str> {
    ROOTS
        .into_iter()
        .filter(|name| {
            for dir in lowerdirs {
                if let Ok(m) = std::fs::symlink_metadata(dir.join(name)) {
                    let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
                    return whiteout;
                }
            }
            true
        })
        .collect()
}

/// Adds each of `names` the command did not create itself to `upper`.
pub(super) fn add(upper: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        let p = upper.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&p)
            .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
        // The process umask must not reach the layer.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| Error::io(format!("setting the mode of {}", p.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topmost_layer_decides_and_a_whiteout_is_absent() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        let bottom = t.path().join("bottom");
        for d in [&top, &bottom] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(bottom.join("etc")).unwrap();
        std::fs::create_dir(bottom.join("proc")).unwrap();
        std::fs::create_dir(top.join("dev")).unwrap();
        let layers = vec![top.clone(), bottom.clone()];
        assert_eq!(missing(&layers), vec!["sys"]);
        assert_eq!(missing(&[]), ROOTS.to_vec());

        let upper = t.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        std::fs::write(upper.join("etc"), "a file the command made").unwrap();
        add(&upper, &["etc", "sys"]).unwrap();
        assert!(
            upper.join("etc").is_file(),
            "the command's own entry is kept"
        );
        let m = std::fs::metadata(upper.join("sys")).unwrap();
        assert!(m.is_dir());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777,
            0o755
        );
    }
}
