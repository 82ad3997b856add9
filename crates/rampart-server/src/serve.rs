//! Start-up, the two listeners, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rampart_audit::AuditLog;
use rampart_policy::profiles;

use crate::approvals::Approvals;
use crate::config::ServerConfig;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::state::{AppState, Loaded};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("creating {}: {source}", path.display())]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {}: {source}", path.display())]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy: {0}")]
    Policy(#[from] rampart_policy::PolicyError),
    #[error("audit trail: {0}")]
    Audit(#[from] rampart_audit::AuditError),
    #[error(
        "cannot listen on {addr}: {source} (is another `rampart serve` running? see `rampart serve status`)"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Unix socket {}: {message}", path.display())]
    Socket { path: PathBuf, message: String },
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

fn create_private_dir(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let home_err = |source| ServerError::Home {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(home_err)?;
    Ok(())
}

/// Where the server listens, once bound (printed by `rampart serve`).
#[derive(Debug, Clone)]
pub struct Bound {
    pub tcp: SocketAddr,
    pub socket: PathBuf,
}

/// Runs the server until `shutdown` completes, then flushes the audit trail.
/// `on_ready` is called once both listeners are bound.
pub async fn run<F, R>(config: ServerConfig, shutdown: F, on_ready: R) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
    R: FnOnce(&Bound),
{
    create_private_dir(&config.home)?;
    std::fs::set_permissions(&config.home, std::fs::Permissions::from_mode(0o700)).map_err(
        |source| ServerError::Home {
            path: config.home.clone(),
            source,
        },
    )?;
    create_private_dir(&config.policies_dir)?;
    let token = crate::token::ensure(&config.home).map_err(|source| ServerError::Token {
        path: crate::token::path(&config.home),
        source,
    })?;
    let (set, source) = profiles::load_effective(&config.policies_dir)?;
    let audit = AuditLog::open(&config.audit_dir)?;

    let tcp_addr = SocketAddr::new(config.addr, config.port);
    let tcp = tokio::net::TcpListener::bind(tcp_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: tcp_addr.to_string(),
            source,
        })?;
    let unix = bind_unix(&config.socket).await?;
    let bound = Bound {
        tcp: tcp.local_addr()?,
        socket: config.socket.clone(),
    };
    // `rampart dashboard` reads the port from here to build the page's URL.
    let _ = crate::token::write_owner_only(
        &config.home.join("serve.port"),
        format!("{}\n", bound.tcp.port()).as_bytes(),
    );

    let state = Arc::new(AppState {
        policy: RwLock::new(Loaded {
            set,
            source: crate::reload::describe(&source),
            last_error: None,
        }),
        token: RwLock::new(token),
        audit,
        approvals: Approvals::default(),
        events: Events::new(),
        metrics: Metrics::default(),
        started: Instant::now(),
        reload_lock: tokio::sync::Mutex::new(()),
        config,
    });
    let _watcher =
        crate::reload::spawn_watcher(state.clone()).map_err(|source| ServerError::Watch {
            path: state.config.policies_dir.clone(),
            source,
        })?;
    crate::reload::spawn_sighup(state.clone())?;

    let app = crate::api::router(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let tcp_server = axum::serve(tcp, app.clone()).with_graceful_shutdown(stopped(stop_rx.clone()));
    let unix_server = serve_unix_on_own_thread(unix, app, stopped(stop_rx))?;
    on_ready(&bound);
    let (a, b) = tokio::join!(tcp_server.into_future(), unix_server);
    let _ = std::fs::remove_file(&state.config.socket);
    // Every returned decision was already written; make sure it is on disk too.
    state.audit.flush_sync()?;
    a?;
    b?;
    Ok(())
}

/// Serves the Unix socket — the preload library's path, one request per spawn — on a
/// thread of its own with a single-threaded runtime.
///
/// Why: a spawn loop asks one question per ~1 ms and the server is idle in between. On
/// the shared multi-threaded runtime, a request arriving at an idle server wakes the
/// parked worker, which then wakes a second worker to look for work to steal; on a small
/// (virtual) machine each wake of an idle CPU costs tens of microseconds and competes
/// with the child being spawned. Here exactly one thread wakes, reads, evaluates, writes
/// the audit line and answers. The TCP listener and everything else stay on the main
/// runtime; both share the state, so decisions and the audit chain are the same.
///
/// Returns a future that completes with the server's result after `shutdown`.
fn serve_unix_on_own_thread(
    listener: tokio::net::UnixListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = std::io::Result<()>>, ServerError> {
    // The listener is registered with the main runtime's reactor; hand its socket over.
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rampart-unix".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            });
            let _ = done_tx.send(result);
        })?;
    Ok(async move {
        done_rx
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the Unix socket server thread died")))
    })
}

/// Binds the Unix socket with mode 0600, replacing a stale socket file left by a crash
/// but refusing to steal one a live server answers on.
async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServerError> {
    let socket_err = |message: String| ServerError::Socket {
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(socket_err(
                "another server is answering on it (see `rampart serve status`)".into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| socket_err(format!("removing stale socket: {e}")))?;
    }
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    // Mode 0600 is set right after bind (changing the process umask would need unsafe
    // code and affect every thread); the socket normally sits in the 0700 home, so
    // nobody else can reach it in between.
    let listener =
        tokio::net::UnixListener::bind(path).map_err(|e| socket_err(format!("bind: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| socket_err(format!("chmod 0600: {e}")))?;
    Ok(listener)
}
