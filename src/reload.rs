//! Hot reload: the config directory is watched (`notify`) and also looked at every
//! `reload_interval`; on a change (or a poll), [`Gateway::reload`] re-reads the whole tree,
//! validates it off the request path and swaps it in atomically, or refuses it (logged, shown
//! at `GET /admin/config`) while the current config keeps serving.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::gateway::Gateway;

/// Editors write a file in several steps: changes within this of each other are one reload.
const SETTLE: Duration = Duration::from_millis(50);

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
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
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
