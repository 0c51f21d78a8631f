//! Where config files come from: a directory on disk, or the demo tree embedded in the binary.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use include_dir::{Dir, include_dir};

/// The bundled demo config (`examples/demo/`), served when `serve` gets no `--config`.
pub static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/examples/demo");

/// A read-only tree of config files addressed by relative path (`pools/fast-pool.toml`).
pub trait Source: Send + Sync {
    /// The file's text, or a human-readable reason it could not be read.
    fn read(&self, path: &str) -> Result<String, String>;
    /// Where this tree lives, for messages.
    fn describe(&self) -> String;
    /// The directory the tree is read from, when it is one (what hot reload watches).
    fn root(&self) -> Option<PathBuf> {
        None
    }
}

/// Files under a directory.
pub struct DirSource(pub PathBuf);

impl Source for DirSource {
    fn read(&self, path: &str) -> Result<String, String> {
        let rel = Path::new(path);
        let escapes =
            rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir));
        if escapes {
            return Err("the path must stay inside the config directory".to_owned());
        }
        std::fs::read_to_string(self.0.join(rel)).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.0.clone())
    }
}

/// Files embedded at build time.
pub struct EmbeddedSource(pub &'static Dir<'static>);

impl Source for EmbeddedSource {
    fn read(&self, path: &str) -> Result<String, String> {
        let file = self
            .0
            .get_file(path)
            .ok_or("no such file in the embedded config")?;
        file.contents_utf8()
            .map(str::to_owned)
            .ok_or_else(|| "the file is not UTF-8".to_owned())
    }

    fn describe(&self) -> String {
        "embedded demo config".to_owned()
    }
}

/// Another source, with every file kept as it was first read. Runtime changes rebuild the
/// config from these copies, so an admin call never picks up a half-edited file on disk;
/// reloading the files is an explicit step.
pub struct CapturedSource {
    inner: std::sync::Arc<dyn Source>,
    files: Mutex<HashMap<String, Result<String, String>>>,
}

impl CapturedSource {
    pub fn new(inner: Box<dyn Source>) -> Self {
        Self {
            inner: std::sync::Arc::from(inner),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// `files` already captured (a last-good snapshot's), over `inner`: reads see `files`,
    /// and [`Self::reread`] starts over from `inner` (the real directory).
    pub fn holding(inner: Box<dyn Source>, files: HashMap<String, String>) -> Self {
        Self {
            inner: std::sync::Arc::from(inner),
            files: Mutex::new(files.into_iter().map(|(p, t)| (p, Ok(t))).collect()),
        }
    }

    /// The same source with nothing captured yet: the next reads see the files as they are
    /// now (a reload).
    pub fn reread(&self) -> Self {
        Self {
            inner: std::sync::Arc::clone(&self.inner),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// A digest of every file read so far (path and content, in path order): equal trees,
    /// equal digests. Shown as the config's version by `GET /admin/config`.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<_> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (path, text) in sorted {
            path.hash(&mut h);
            text.hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// The directory the files are read from, if they are.
    pub fn root(&self) -> Option<std::path::PathBuf> {
        self.inner.root()
    }

    /// The paths read so far (what a watcher should watch).
    pub fn paths(&self) -> Vec<String> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.keys().cloned().collect()
    }
}

impl Source for CapturedSource {
    fn read(&self, path: &str) -> Result<String, String> {
        // Not on the request path: read at startup and on admin calls only.
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .entry(path.to_owned())
            .or_insert_with(|| self.inner.read(path))
            .clone()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A tree held in memory: path → text (tests, embedding programs).
#[derive(Debug, Clone, Default)]
pub struct MemorySource(pub HashMap<String, String>);

impl MemorySource {
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            (files.into_iter())
                .map(|(p, t)| (p.to_owned(), t.to_owned()))
                .collect(),
        )
    }
}

impl Source for MemorySource {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory".to_owned())
    }

    fn describe(&self) -> String {
        "in-memory tree".to_owned()
    }
}
