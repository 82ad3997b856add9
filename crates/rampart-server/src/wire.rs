//! JSON shapes of the HTTP API (DESIGN.md §5), defined once for the server and the CLI.

use serde::{Deserialize, Serialize};

/// `POST /v1/preflight/{tool}`: the anchor-compatible core plus optional context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PreflightRequest {
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub params: Params,
    /// `false` asks for monitor semantics for this call (the caller's mode is monitor).
    #[serde(default = "default_true")]
    pub enforce: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Hold an `ask` open this long for a person to decide; absent or 0 answers at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Set by a caller that could not read the exec it reports (the supervisor, for a task
    /// whose memory is unreadable): why. The server does not evaluate it; it records the
    /// call as denied (enforce) or logged (monitor) with that reason, so the refusal is in
    /// the audit trail like any other decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// How many execs the caller let run unchecked (fail-open: nobody answered) since it
    /// last reported; sent with the next preflight that gets an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_unchecked: Option<u64>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For file tools: the path acted on (tested by `path_matches`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Answer to a preflight: always HTTP 200 when evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreflightResponse {
    pub allowed: bool,
    pub decision: String,
    pub message: String,
    pub matched_policies: Vec<String>,
    pub eval_duration_us: u64,
    /// Empty when nothing was audited (mode disabled).
    pub audit_id: String,
    /// In monitor mode: the decision that would have been enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_decision: Option<String>,
    /// For an `ask` that waited: the approval that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

/// `POST /v1/test`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestRequest {
    pub command: String,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResponse {
    pub allowed: bool,
    pub decision: String,
    pub message: String,
    pub matched_policies: Vec<String>,
    /// `file:line` of the deciding rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub pieces: Vec<String>,
    pub eval_duration_us: u64,
}

/// The state of one approval (`GET /v1/approvals[/{id}]`, SSE `approval`/`resolution`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalInfo {
    pub id: String,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: String,
    pub command: String,
    pub agent: String,
    pub session: String,
    pub tool: String,
    /// The ask rule's message.
    pub message: String,
    pub matched_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: when the waiting call gives up.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// `session` when approved "for this session" (same command text, same session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `POST /v1/approvals/{id}/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub approved: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// `session`: the approval also covers the same command text in the same agent and
    /// session from now on (until the server stops). Absent: this command (and the
    /// programs it runs itself, briefly).
    #[serde(default)]
    pub scope: Option<String>,
}

/// `POST /v1/policy/reload` (also sent as the SSE `reload` event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadResult {
    pub ok: bool,
    /// Counts of the policy in force after the attempt (the old one when it failed).
    pub policies: usize,
    pub rules: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `policies dir` or `embedded standard profile`.
    #[serde(default)]
    pub source: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub mode: String,
    pub version: String,
    pub uptime_secs: u64,
    pub policies: usize,
    pub rules: usize,
    pub policy_source: String,
    pub policy_files: Vec<PolicyFileStatus>,
    pub pending_approvals: usize,
    pub audit_dir: String,
    pub last_reload_error: Option<String>,
    /// Refusals answered since start although the audit trail could not record them
    /// (each was said on the server's stderr).
    #[serde(default)]
    pub unrecorded_refusals: u64,
    /// Agent credentials alive now (`POST /v1/agents`).
    #[serde(default)]
    pub agent_credentials: usize,
    /// Audit export targets (`--export`): delivered, lag, last error.
    #[serde(default)]
    pub exports: Vec<crate::export::ExportStatus>,
    /// `--policy-repo`: adopted and refused commits.
    #[serde(default)]
    pub policy_repo: Option<crate::policy_repo::RepoStatus>,
    /// Notification targets configured (`--notify`, `config.yaml`).
    #[serde(default)]
    pub notify_targets: usize,
    /// Notifications delivered / given up after every retry / dropped (queue full).
    #[serde(default)]
    pub notify_sent: u64,
    #[serde(default)]
    pub notify_failed: u64,
    #[serde(default)]
    pub notify_dropped: u64,
    /// The last delivery error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyFileStatus {
    pub path: String,
    pub policies: usize,
    pub rules: usize,
}

/// `POST /v1/agents` (admin token only): issue an agent credential bound to `agent`,
/// `session` and the running process `pid`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    pub agent: String,
    pub session: String,
    pub pid: i64,
}

/// The answer to `POST /v1/agents`. `token` (`rampart_agent_` + 64 lowercase hex) is
/// shown this once; the server keeps only its sha256. `id` (a ULID) names the credential
/// for `DELETE /v1/agents/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentCredential {
    pub token: String,
    pub id: String,
    pub agent: String,
    pub session: String,
}

/// `{"error": "..."}`, the body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// "1 policy, 3 rules": the counts every status, reload and show line says, in English.
pub fn policies_and_rules(policies: usize, rules: usize) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {}",
        plural(policies, "policy", "policies"),
        plural(rules, "rule", "rules")
    )
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn one_policy_is_singular() {
        assert_eq!(super::policies_and_rules(1, 1), "1 policy, 1 rule");
        assert_eq!(super::policies_and_rules(0, 2), "0 policies, 2 rules");
    }
}
