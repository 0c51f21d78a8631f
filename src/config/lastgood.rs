//! The last-good snapshot (`[global] cache_enabled`, `use_defaults_on_failure`): every config
//! tree that loads is copied, file by file as written (`${VAR}` unexpanded, so no secret lands
//! on disk), to a directory of its own under the state directory. When the tree on disk fails
//! to load at startup, a gateway whose snapshot says `use_defaults_on_failure = true` starts on
//! the snapshot instead of refusing to start, reports the failure at `GET /admin/config`, and
//! goes on watching the real files: the first valid change replaces the snapshot's config.
//!
//! A restart after a bad edit therefore cannot take the gateway down; it can only leave it on
//! the last config that was known to work.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use super::{CapturedSource, DirSource, Source};

/// The file listing what a snapshot holds (and proving it was written to the end).
const MANIFEST: &str = "_snapshot.json";

/// One config directory's snapshot.
#[derive(Debug, Clone)]
pub struct LastGood {
    dir: PathBuf,
}

impl LastGood {
    /// The snapshot of the config tree at `config_dir`, kept under `state_dir`.
    pub fn new(state_dir: &Path, config_dir: &Path) -> Self {
        let canonical = config_dir
            .canonicalize()
            .unwrap_or_else(|_| config_dir.to_owned());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        canonical.hash(&mut h);
        let dir = state_dir.join(format!("last-good-{:016x}", h.finish()));
        Self { dir }
    }

    /// The state directory when none is given: `$XDG_STATE_HOME/switchyard`, else
    /// `~/.local/state/switchyard`, else the system's temporary directory.
    pub fn default_state_dir() -> PathBuf {
        let xdg = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty());
        let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
        match (xdg, home) {
            (Some(x), _) => PathBuf::from(x).join("switchyard"),
            (None, Some(h)) => PathBuf::from(h).join(".local/state/switchyard"),
            (None, None) => std::env::temp_dir().join("switchyard"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replace the snapshot with the files `source` read. Written to a sibling directory
    /// first and renamed, so a crash mid-write leaves the previous snapshot whole.
    pub fn save(&self, source: &CapturedSource) -> io::Result<()> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let tmp = self
            .dir
            .with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut paths = source.paths();
        paths.sort();
        let mut written = Vec::new();
        for path in paths {
            let Ok(text) = source.read(&path) else {
                continue;
            };
            let target = tmp.join(&path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&target, text)?;
            written.push(path);
        }
        // The files may hold keys written in clear: only this user may read the copy.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        }
        let manifest = serde_json::json!({
            "origin": source.describe(),
            "fingerprint": source.fingerprint(),
            "saved_at_ms": super::super::gateway::unix_ms(),
            "files": written,
        });
        std::fs::write(tmp.join(MANIFEST), manifest.to_string())?;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::rename(&tmp, &self.dir)
    }

    /// The snapshot's files, if a complete one exists: a source that holds them and rereads
    /// `live` (the real directory) on reload. Also returns when it was saved (Unix ms).
    pub fn open(&self, live: Box<dyn Source>) -> Option<(CapturedSource, u64)> {
        let manifest = std::fs::read_to_string(self.dir.join(MANIFEST)).ok()?;
        let manifest: serde_json::Value = serde_json::from_str(&manifest).ok()?;
        let saved_at = manifest["saved_at_ms"].as_u64().unwrap_or(0);
        let on_disk = DirSource(self.dir.clone());
        let mut files = HashMap::new();
        for path in manifest["files"].as_array()? {
            let path = path.as_str()?;
            files.insert(path.to_owned(), on_disk.read(path).ok()?);
        }
        Some((CapturedSource::holding(live, files), saved_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, MemorySource};

    #[test]
    fn a_saved_tree_reopens_with_the_same_files_and_rereads_the_live_one() {
        let state = tempfile::tempdir().expect("tempdir");
        let live = tempfile::tempdir().expect("tempdir");
        let lg = LastGood::new(state.path(), live.path());
        assert!(
            lg.open(Box::new(DirSource(live.path().into()))).is_none(),
            "nothing saved"
        );

        let tree = MemorySource::new([
            (
                "_registry.toml",
                "[providers]\nm = { file = \"providers/m.toml\" }\n",
            ),
            (
                "providers/m.toml",
                "[provider]\ntype = \"mock\"\napi_key = \"${KEY:x}\"\n[models.a]\n",
            ),
        ]);
        let captured = CapturedSource::new(Box::new(tree));
        Config::load(&captured).expect("valid");
        lg.save(&captured).expect("saved");
        let stored = std::fs::read_to_string(lg.dir().join("providers/m.toml")).expect("file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(lg.dir())
                .expect("dir")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        }
        assert!(stored.contains("${KEY:x}"), "kept as written: {stored}");

        let (reopened, saved_at) = lg
            .open(Box::new(DirSource(live.path().into())))
            .expect("one");
        assert!(saved_at > 0);
        assert_eq!(reopened.fingerprint(), captured.fingerprint());
        Config::load(&reopened).expect("the snapshot loads");
        let reread = reopened.reread();
        assert!(
            reread.read("_registry.toml").is_err(),
            "the live dir is empty"
        );
    }
}
