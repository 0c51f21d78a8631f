//! Hot reload: the config directory is watched (`notify`) and also looked at every
//! `reload_interval`; on a change (or a poll), [`Gateway::reload`] re-reads the whole tree,
//! validates it off the request path and swaps it in atomically, or refuses it (logged, shown
//! at `GET /admin/config`) while the current config keeps serving.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::gateway::Gateway;

/// However busy the files stay, a change waits at most this many settle periods.
const MAX_SETTLES: u32 = 10;

/// Watch `root` and poll every `interval` until the gateway is dropped.
pub async fn watch(gateway: Weak<Gateway>, root: PathBuf, interval: Duration) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.try_send(());
        }
    });
    // Kept alive for the loop; without it (no inotify, say) polling still works.
    let _watcher = match watcher {
        Ok(mut w) => match w.watch(&root, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(target: "switchyard::config", error = %e, root = %root.display(), "cannot watch the config directory; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(target: "switchyard::config", error = %e, "no file watcher; polling only");
            None
        }
    };
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {
                // Editors and deploy tools write a tree in several steps: wait until the files
                // have been quiet for `[global] reload_settle` (a longer burst is cut short
                // after MAX_SETTLES of them).
                let Some(settle) = gateway.upgrade().map(|g| g.snapshot().config.reload_settle) else {
                    return;
                };
                let until = tokio::time::Instant::now() + settle * MAX_SETTLES;
                loop {
                    let quiet = tokio::time::sleep(settle);
                    tokio::select! {
                        Some(()) = rx.recv() => {
                            if tokio::time::Instant::now() >= until {
                                break;
                            }
                        }
                        () = quiet => break,
                    }
                }
            }
            () = tokio::time::sleep(interval) => {}
        }
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        // The outcome is logged and kept in the config status by `reload` itself.
        let _ = gateway.reload();
    }
}
