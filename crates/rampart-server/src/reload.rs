//! Policy reload: on `POST /v1/policy/reload`, SIGHUP, and changes in the policy
//! directory (notify, debounced). A policy that fails to load never replaces the one in
//! force; the error, with `file:line`, is reported and kept in `/v1/status`.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use rampart_policy::profiles::Source;

use crate::state::{AppState, Loaded};
use crate::wire::ReloadResult;

/// Quiet time after the last change before reloading: editors write files in bursts.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub fn describe(source: &Source) -> String {
    match source {
        Source::Directory(dir) => dir.display().to_string(),
        Source::EmbeddedStandard => "embedded standard profile".to_owned(),
    }
}

pub async fn reload(state: &Arc<AppState>, trigger: &str) -> ReloadResult {
    let _serialised = state.reload_lock.lock().await;
    let dir = state.config.policies_dir.clone();
    let repo = crate::policy_repo::files_for(&state.config);
    let loaded =
        tokio::task::spawn_blocking(move || crate::policy_repo::load(&dir, repo.as_deref())).await;
    // The token may have been rotated (`rampart token rotate`): pick it up too, but only
    // from a home and file others cannot write or read (the rule the server starts
    // under); otherwise the token in force stays.
    match crate::token::check_private(&state.config.home) {
        Ok(()) => {
            if let Ok(token) = crate::token::read(&state.config.home)
                && crate::token::is_well_formed(&token)
            {
                state.set_token(token);
            }
        }
        Err(unsafe_file) => {
            eprintln!("rampart: token not re-read, the one in force stays: {unsafe_file}");
        }
    }
    let result = match loaded {
        Ok(Ok((set, source))) => {
            let result = ReloadResult {
                ok: true,
                policies: set.policies().len(),
                rules: set.rule_count(),
                error: None,
                source: source.clone(),
            };
            state.set_loaded(Loaded {
                set,
                source,
                last_error: None,
            });
            eprintln!(
                "rampart: policies reloaded ({trigger}): {} from {}",
                crate::wire::policies_and_rules(result.policies, result.rules),
                result.source
            );
            result
        }
        Ok(Err(err)) => failed(state, trigger, err.to_string()),
        Err(join) => failed(state, trigger, format!("policy loader failed: {join}")),
    };
    state.metrics.reload(result.ok);
    state.events.send("reload", &result);
    result
}

fn failed(state: &AppState, trigger: &str, error: String) -> ReloadResult {
    let mut loaded = state.loaded();
    // The error quotes the policy file, which anyone who can write it chose: escaped.
    eprintln!(
        "rampart: policy reload ({trigger}) failed, keeping the previous policy: {}",
        rampart_contract::printable::printable_string(error.as_bytes())
    );
    loaded.last_error = Some(error.clone());
    let result = ReloadResult {
        ok: false,
        policies: loaded.set.policies().len(),
        rules: loaded.set.rule_count(),
        error: Some(error),
        source: loaded.source.clone(),
    };
    state.set_loaded(loaded);
    result
}

/// Watches the policy directory; returns the watcher, which must be kept alive.
pub fn spawn_watcher(state: Arc<AppState>) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&state.config.policies_dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the burst of events is over.
            loop {
                tokio::time::sleep(DEBOUNCE).await;
                let mut more = false;
                while rx.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
            reload(&state, "file change").await;
        }
    });
    Ok(watcher)
}

/// Reloads on SIGHUP.
pub fn spawn_sighup(state: Arc<AppState>) -> std::io::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reload(&state, "SIGHUP").await;
        }
    });
    Ok(())
}
