//! Start-up, the two listeners, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::serve::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use rampart_audit::AuditLog;

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
        "cannot listen on {addr}: {cause} (is another `rampart serve` running? see `rampart serve status`)"
    )]
    Bind {
        addr: String,
        // Not a `source`: the message already says it, and the CLI's one-line error
        // would say it a second time.
        cause: std::io::Error,
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
    protect_process()?;
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
    let (set, source) = crate::policy_repo::load(
        &config.policies_dir,
        crate::policy_repo::files_for(&config).as_deref(),
    )?;
    let exports = crate::export::start(&config.exports, &config.home, &config.audit_dir)?;
    let audit = AuditLog::open(&config.audit_dir)?;
    for repair in audit.recovery() {
        eprintln!("rampart: audit: {repair}");
    }
    let connections = Arc::new(Connections::new(connection_cap(raise_fd_limit())));
    if connections.max < LOW_CAP_WARNING {
        eprintln!(
            "rampart: the open-file limit allows only {} connections at once (raise it with `ulimit -n`)",
            connections.max
        );
    }

    let tcp_addr = SocketAddr::new(config.addr, config.port);
    let tcp = tokio::net::TcpListener::bind(tcp_addr)
        .await
        .map_err(|cause| ServerError::Bind {
            addr: tcp_addr.to_string(),
            cause,
        })?;
    let unix = bind_unix(&config.socket).await?;
    raise_backlog(&tcp);
    raise_backlog(&unix);
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
            source,
            last_error: None,
        }),
        token: RwLock::new(token),
        agents: crate::agents::Agents::load(&config.home),
        audit,
        approvals: Approvals::default(),
        grants: crate::approvals::Grants::default(),
        events: Events::new(),
        metrics: Metrics::default(),
        started: Instant::now(),
        reload_lock: tokio::sync::Mutex::new(()),
        connections: connections.clone(),
        exports,
        policy_repo: crate::policy_repo::RepoState::default(),
        shells: Default::default(),
        notifier: crate::notify::Notifier::start(config.notify.clone()),
        config,
    });
    state
        .notifier
        .set_dashboard(format!("http://{}/dashboard/", bound.tcp));
    crate::policy_repo::start(state.clone())?;
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
    let tcp_server = serve_connections(
        tcp,
        app.clone(),
        connections.clone(),
        stopped(stop_rx.clone()),
    );
    let unix_server = serve_unix(unix, state.clone(), app, connections, stopped(stop_rx))?;
    on_ready(&bound);
    let ((), b) = tokio::join!(tcp_server, unix_server);
    let _ = std::fs::remove_file(&state.config.socket);
    // Every returned decision was already written; make sure it is on disk too.
    state.audit.flush_sync()?;
    b?;
    Ok(())
}

/// What the server does to itself before it reads the token or opens the trail.
///
/// - Non-dumpable (`PR_SET_DUMPABLE` 0): a process of the same user — the agent being
///   guarded — can then no longer list `/proc/<serve>/fd`, read its `environ` or `mem`,
///   ptrace it, or copy its sockets with `pidfd_getfd`; only root (CAP_SYS_PTRACE) can.
/// - SIGXFSZ no longer kills it: with `prlimit --fsize=N` the first audit write past the
///   limit would end the server silently (the default action) and every client would
///   apply its fail-open rule. With the signal caught, that write fails with EFBIG and is
///   handled like any other audit write failure (refusals still answered, said on stderr).
///   tokio's handler stays installed for the life of the process and does nothing else.
fn protect_process() -> Result<(), ServerError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| {
            ServerError::Io(std::io::Error::other(format!(
                "cannot make the server non-dumpable (prctl PR_SET_DUMPABLE): {e}"
            )))
        })?;
    let xfsz = tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ);
    let mut caught = tokio::signal::unix::signal(xfsz)?;
    tokio::spawn(async move { while caught.recv().await.is_some() {} });
    Ok(())
}

/// How long a connection may take to send a request's headers, counted from when it
/// connected or finished its previous request: idle keep-alive connections and clients
/// that stall mid-header are closed after this. (Held `ask` answers and event streams
/// are responses in progress, not idle.)
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections served at once (TCP and Unix socket together), further bounded by
/// the open-file limit less [`FD_RESERVE`]. A connection over the cap is answered 503
/// `{"error": "too many connections ..."}` and closed.
pub const MAX_CONNECTIONS: usize = 16_384;

/// File descriptors kept free for the audit files, policy reloads and readers.
const FD_RESERVE: u64 = 64;

/// Below this many connections the start-up says the open-file limit is low.
const LOW_CAP_WARNING: usize = 1024;

/// Refusals being written at once; beyond this an over-cap connection is just closed.
const MAX_REFUSING: usize = 64;

/// After a graceful shutdown begins, how long open connections (event streams, held
/// asks) get to finish before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections the kernel queues for `accept` on each listener. The default of 128 that
/// `bind` uses overflows when a parallel build spawns hundreds of programs at once; an
/// overflowing TCP queue drops the connection attempt and the client retries only after a
/// second, beyond the preload's connect timeout. The kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Calling `listen` again on a listening socket changes its backlog (Linux, BSD); if
/// that fails the default stays, which still works.
fn raise_backlog(listener: &impl std::os::fd::AsFd) {
    let _ = rustix::net::listen(listener, LISTEN_BACKLOG);
}

/// Raises the soft open-file limit to the hard one (a server with 1 000 event-stream
/// clients needs more than the common 1 024) and returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        limit.current = Some(maximum);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(current);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

fn connection_cap(fd_limit: u64) -> usize {
    let by_fds = usize::try_from(fd_limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    MAX_CONNECTIONS.min(by_fds).max(1)
}

/// The connection cap shared by both listeners.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    pub max: usize,
    refusing: AtomicUsize,
}

impl Connections {
    fn new(max: usize) -> Connections {
        Connections {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refusing: AtomicUsize::new(0),
        }
    }

    /// A place under the cap, if there is one.
    pub(crate) fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }
}

/// Accepts connections until `shutdown`, serving each with HTTP/1.1 under the cap and
/// [`IDLE_TIMEOUT`]; then lets open ones finish for up to [`DRAIN_TIMEOUT`].
async fn serve_connections<L>(
    mut listener: L,
    app: axum::Router,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
{
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `accept` retries by itself on errors such as EMFILE (after a pause).
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.slots.clone().try_acquire_owned() else {
            refuse(io, &connections);
            continue;
        };
        tokio::spawn(serve_http(io, app.clone(), permit, closing_rx.clone()));
    }
    let _ = closing_tx.send(true);
    let all = u32::try_from(connections.max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, connections.slots.acquire_many(all)).await;
}

/// Serves one connection with HTTP/1.1 to its end, under [`IDLE_TIMEOUT`] for each
/// request's head; from `closing`, finishes the request in progress and closes.
async fn serve_http<Io>(
    io: Io,
    app: axum::Router,
    permit: OwnedSemaphorePermit,
    mut closing: tokio::sync::watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = async { let _ = closing.wait_for(|c| *c).await.is_ok(); } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(permit);
}

/// Answers a connection over the cap with 503 and closes it, without holding it long.
fn refuse<Io>(mut io: Io, connections: &Arc<Connections>)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if connections.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        connections.refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let connections = connections.clone();
    tokio::spawn(async move {
        let body = format!(
            "{{\"error\":\"too many connections ({} open); try again later\"}}",
            connections.max
        );
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            io.write_all(response.as_bytes()).await?;
            io.shutdown().await?;
            // Read what the client sent, so closing does not reset the connection
            // before it has read the answer.
            let mut sink = [0u8; 4096];
            while io.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
        connections.refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Serves the Unix socket: preflight checks on the fast path (`fastpath.rs`, plain
/// threads), everything else handed to the HTTP stack on this runtime. Returns a future
/// that completes after `shutdown`, once the fast path's workers have stopped.
fn serve_unix(
    listener: tokio::net::UnixListener,
    state: Arc<AppState>,
    app: axum::Router,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = std::io::Result<()>>, ServerError> {
    // The listener is registered with the runtime's reactor; hand its socket over.
    let listener = listener.into_std()?;
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let handoff = HttpHandoff {
        runtime: tokio::runtime::Handle::current(),
        app,
        state: state.clone(),
        connections: connections.clone(),
        closing: closing_rx,
    };
    let running = crate::fastpath::start(listener, state, connections, handoff)?;
    Ok(async move {
        shutdown.await;
        tokio::task::spawn_blocking(move || running.stop())
            .await
            .map_err(std::io::Error::other)?;
        let _ = closing_tx.send(true);
        Ok(())
    })
}

/// Where the fast path hands the connections it does not serve: the HTTP stack on the
/// async runtime, with the bytes already read put back in front.
pub(crate) struct HttpHandoff {
    runtime: tokio::runtime::Handle,
    app: axum::Router,
    state: Arc<AppState>,
    connections: Arc<Connections>,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl HttpHandoff {
    /// A connection over the cap: 503 and close, as on TCP.
    pub(crate) fn refuse(&self, stream: std::os::unix::net::UnixStream) {
        let connections = self.connections.clone();
        self.runtime.spawn(async move {
            if let Ok(io) = tokio::net::UnixStream::from_std(stream) {
                refuse(io, &connections);
            }
        });
    }

    /// Serves the rest of a connection: first writes `pending` (answers the client has
    /// not taken yet), then answers `hold` (an ask held for a person; `true`: the client
    /// asked to close after it), then serves HTTP with `unread` as the first bytes.
    pub(crate) fn take_over(
        &self,
        stream: std::os::unix::net::UnixStream,
        pending: Vec<u8>,
        hold: Option<(Box<crate::decide::Hold>, bool)>,
        mut unread: Vec<u8>,
        permit: OwnedSemaphorePermit,
    ) {
        let app = self.app.clone();
        let state = self.state.clone();
        let closing = self.closing.clone();
        unread.shrink_to_fit();
        self.runtime.spawn(async move {
            let Ok(mut io) = tokio::net::UnixStream::from_std(stream) else {
                return;
            };
            if !pending.is_empty() && io.write_all(&pending).await.is_err() {
                return;
            }
            if let Some((hold, close)) = hold {
                let Some(answer) = hold_open(&mut io, hold, state, &mut unread).await else {
                    return;
                };
                if crate::fastpath::write_answer(&mut io, &answer, close)
                    .await
                    .is_err()
                    || close
                {
                    let _ = io.shutdown().await;
                    return;
                }
            }
            // Boxed: inline, the HTTP connection's state would make every held ask's
            // task as large as a served connection's.
            Box::pin(serve_http(Rewind::new(unread, io), app, permit, closing)).await;
        });
    }
}

/// Waits for the answer to `hold` while watching its connection: a client that goes away
/// drops the wait, which expires the approval (`AbandonGuard`), and `None` is returned.
/// Bytes the client sends meanwhile are kept in `unread`.
async fn hold_open(
    io: &mut tokio::net::UnixStream,
    hold: Box<crate::decide::Hold>,
    state: Arc<AppState>,
    unread: &mut Vec<u8>,
) -> Option<crate::decide::Answer> {
    let wait = hold.wait(state);
    let mut wait = std::pin::pin!(wait);
    // Small: this future lives as long as the person takes, once per held ask.
    let mut chunk = [0u8; 64];
    loop {
        tokio::select! {
            answer = &mut wait => return Some(answer),
            ready = io.readable() => {
                ready.ok()?;
                match io.try_read(&mut chunk) {
                    Ok(0) => return None,
                    Ok(n) => unread.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// A stream whose first bytes were already read: they are read again first.
struct Rewind {
    unread: Vec<u8>,
    at: usize,
    io: tokio::net::UnixStream,
}

impl Rewind {
    fn new(unread: Vec<u8>, io: tokio::net::UnixStream) -> Rewind {
        Rewind { unread, at: 0, io }
    }
}

impl tokio::io::AsyncRead for Rewind {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(left) = this.unread.get(this.at..).filter(|l| !l.is_empty()) {
            let n = left.len().min(buf.remaining());
            buf.put_slice(left.get(..n).unwrap_or_default());
            this.at += n;
            if this.at == this.unread.len() {
                this.unread = Vec::new();
                this.at = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Rewind {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
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
