//! Counters for `/metrics` (Prometheus text format). Lock-free atomics on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use rampart_policy::Action;

/// Upper bounds of the evaluation-latency histogram, in microseconds.
const BUCKETS_US: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

#[derive(Default)]
pub struct Metrics {
    decisions: [AtomicU64; 4],
    buckets: [AtomicU64; BUCKETS_US.len()],
    eval_count: AtomicU64,
    eval_sum_us: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    audit_errors: AtomicU64,
    /// Failed audit writes since the last successful one: 0 while the trail is writable.
    audit_outage: AtomicU64,
    /// Refusals answered although their event could not be written (since start).
    unrecorded_refusals: AtomicU64,
    /// The same, in the current outage (reset when the trail is writable again).
    outage_refusals: AtomicU64,
}

fn index(action: Action) -> usize {
    match action {
        Action::Allow => 0,
        Action::Log => 1,
        Action::Ask => 2,
        Action::Deny => 3,
    }
}

impl Metrics {
    pub fn decision(&self, action: Action, eval_us: u64) {
        if let Some(c) = self.decisions.get(index(action)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.eval_count.fetch_add(1, Ordering::Relaxed);
        self.eval_sum_us.fetch_add(eval_us, Ordering::Relaxed);
        if let Some(i) = BUCKETS_US.iter().position(|&b| eval_us <= b)
            && let Some(bucket) = self.buckets.get(i)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed audit write; true when it is the first of an outage.
    pub fn audit_error(&self) -> bool {
        self.audit_errors.fetch_add(1, Ordering::Relaxed);
        self.audit_outage.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// Counts a refusal that was answered although its event could not be written.
    pub fn unrecorded_refusal(&self) {
        self.unrecorded_refusals.fetch_add(1, Ordering::Relaxed);
        self.outage_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals answered without their event since the server started.
    pub fn unrecorded_refusals(&self) -> u64 {
        self.unrecorded_refusals.load(Ordering::Relaxed)
    }

    /// Notes a successful audit write; after an outage, how many writes failed during it
    /// and how many of those were refusals answered unrecorded.
    pub fn audit_recovered(&self) -> Option<(u64, u64)> {
        if self.audit_outage.load(Ordering::Relaxed) == 0 {
            return None;
        }
        match self.audit_outage.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some((n, self.outage_refusals.swap(0, Ordering::Relaxed))),
        }
    }

    /// The Prometheus text; the gauges are read by the caller from where they live.
    pub fn render(&self, pending: usize, stream_clients: usize, connections: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP rampart_decisions_total Preflight decisions by action."
        );
        let _ = writeln!(out, "# TYPE rampart_decisions_total counter");
        for action in [Action::Allow, Action::Log, Action::Ask, Action::Deny] {
            let n = self
                .decisions
                .get(index(action))
                .map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(out, "rampart_decisions_total{{action=\"{action}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP rampart_eval_duration_seconds Policy evaluation latency."
        );
        let _ = writeln!(out, "# TYPE rampart_eval_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_US.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "rampart_eval_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.eval_count.load(Ordering::Relaxed);
        let sum = self.eval_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "rampart_eval_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "rampart_eval_duration_seconds_sum {sum}");
        let _ = writeln!(out, "rampart_eval_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP rampart_pending_approvals Asks waiting for a person."
        );
        let _ = writeln!(out, "# TYPE rampart_pending_approvals gauge");
        let _ = writeln!(out, "rampart_pending_approvals {pending}");
        let _ = writeln!(
            out,
            "# HELP rampart_policy_reloads_total Policy reloads by result."
        );
        let _ = writeln!(out, "# TYPE rampart_policy_reloads_total counter");
        let ok = self.reloads_ok.load(Ordering::Relaxed);
        let failed = self.reloads_failed.load(Ordering::Relaxed);
        let _ = writeln!(out, "rampart_policy_reloads_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(
            out,
            "rampart_policy_reloads_total{{result=\"error\"}} {failed}"
        );
        let _ = writeln!(
            out,
            "# HELP rampart_audit_errors_total Audit writes that failed (would-be allows answered 503, refusals answered unrecorded)."
        );
        let _ = writeln!(out, "# TYPE rampart_audit_errors_total counter");
        let errors = self.audit_errors.load(Ordering::Relaxed);
        let _ = writeln!(out, "rampart_audit_errors_total {errors}");
        let _ = writeln!(
            out,
            "# HELP rampart_unrecorded_refusals_total Refusals answered although the audit trail could not record them."
        );
        let _ = writeln!(out, "# TYPE rampart_unrecorded_refusals_total counter");
        let _ = writeln!(
            out,
            "rampart_unrecorded_refusals_total {}",
            self.unrecorded_refusals()
        );
        let _ = writeln!(
            out,
            "# HELP rampart_audit_writable 1 when the last audit write succeeded, 0 while writes fail."
        );
        let _ = writeln!(out, "# TYPE rampart_audit_writable gauge");
        let writable = u8::from(self.audit_outage.load(Ordering::Relaxed) == 0);
        let _ = writeln!(out, "rampart_audit_writable {writable}");
        let _ = writeln!(
            out,
            "# HELP rampart_event_stream_clients Clients of /v1/events/stream now."
        );
        let _ = writeln!(out, "# TYPE rampart_event_stream_clients gauge");
        let _ = writeln!(out, "rampart_event_stream_clients {stream_clients}");
        let _ = writeln!(
            out,
            "# HELP rampart_open_connections Connections being served now (TCP and Unix socket)."
        );
        let _ = writeln!(out, "# TYPE rampart_open_connections gauge");
        let _ = writeln!(out, "rampart_open_connections {connections}");
        out
    }
}
