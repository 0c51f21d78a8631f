//! The config loader: TOML text → validation. The input is up to five files separated by NUL
//! bytes (registry, provider, task group, pool, wrappers), so the fuzzer can keep the tree's
//! shape and mutate its values. Every input must load or give issues, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::{Config, MemorySource};

const PATHS: [&str; 5] = [
    "_registry.toml",
    "providers/p.toml",
    "task-groups/g.toml",
    "pools/pool.toml",
    "wrappers/w.toml",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = PATHS.iter().copied().zip(text.split('\0'));
    let source = MemorySource::new(files);
    let env = |name: &str| (name == "SET").then(|| "value".to_owned());
    let _ = Config::load_with_env(&source, &env);
});
