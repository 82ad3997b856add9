//! The audit event, its on-disk line format and the hash that chains lines together.
//!
//! A line is the compact JSON of [`AuditEvent`] with fields in declaration order and
//! `hash` last. `hash` is `sha256:<hex>` of the `prev_hash` string followed by the same
//! line serialised without `hash` — which, because `hash` is last, is exactly the line
//! with its trailing `,"hash":"sha256:…"` removed. Verification therefore hashes the raw
//! bytes on disk, so any change to a stored line shows, even one that leaves its JSON
//! meaning intact (an escape, a space).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditError;

/// `prev_hash` of the very first event of a trail: `sha256:` and 64 zeros.
pub const GENESIS_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

const HASH_PREFIX: &str = "sha256:";
const HASH_LEN: usize = HASH_PREFIX.len() + 64;
const HASH_FIELD_OPEN: &[u8] = b",\"hash\":\"";
const HASH_FIELD_CLOSE: &[u8] = b"\"}";
/// Bytes taken by `,"hash":"sha256:<64 hex>"}` at the end of every line.
const HASH_FIELD_LEN: usize = HASH_FIELD_OPEN.len() + HASH_LEN + HASH_FIELD_CLOSE.len();

/// One stored decision. Field order is the on-disk order and part of the hash: do not
/// reorder fields, and add new optional ones just before `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// ULID; strictly increasing in file order, so ids compare like positions.
    pub id: String,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-26T06:27:45.123456Z`.
    pub ts: String,
    pub agent: String,
    pub session: String,
    pub tool: String,
    /// Redacted before storing.
    pub command: String,
    /// Redacted before storing.
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
    /// The libc entry point or mechanism that saw the command (`execve`, `seccomp`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `allow`, `deny`, `ask` or `log`: the decision that was acted on.
    pub decision: String,
    /// Matched policy names joined with `", "`; empty when none matched.
    pub policy: String,
    /// Redacted before storing, like `command`.
    pub message: String,
    /// Policy evaluation time in microseconds.
    pub eval_us: u64,
    /// Present when the decision came from a person resolving an `ask`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// `enforce` or `monitor`, when the server knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Only on a report of execs that ran unchecked (`decision` is `unchecked`): how
    /// many the reporting process ran without asking (its library failed open because no
    /// server answered). Such an event is no decision; readers that do not know it see
    /// an event with an unknown decision and count it as nothing but an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<u64>,
    /// Only on the shell's exec of exactly the command a `system()`/`popen()` decision
    /// allowed (same session, the shell a direct child of that caller): the id of that
    /// decision. The exec is part of it, not a decision of its own (not counted by
    /// [`stats`](crate::stats)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    /// Only on an allow made by `quiet: true` rules (a known-benign exec such as a
    /// version manager's shim): kept out of the live feed and `audit tail` unless asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
    pub prev_hash: String,
    /// Empty only while the writer is computing it; never empty on disk.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// How a person resolved an `ask` (or that it timed out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approval's ULID, as in `/v1/approvals/{id}`.
    pub id: String,
    pub approved: bool,
    pub resolved_by: String,
    pub message: String,
    /// RFC 3339 UTC.
    pub resolved_at: String,
}

/// What the caller knows about a decision; [`crate::AuditLog::append`] adds id, time and
/// hashes and redacts `command`, `argv` and `message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    pub agent: String,
    pub session: String,
    pub tool: String,
    pub command: String,
    pub argv: Vec<String>,
    pub exe: Option<String>,
    pub cwd: Option<String>,
    pub pid: Option<i64>,
    pub ppid: Option<i64>,
    pub via: Option<String>,
    pub decision: String,
    pub policy: String,
    pub message: String,
    pub eval_us: u64,
    pub approval: Option<Approval>,
    pub mode: Option<String>,
    /// See [`AuditEvent::unchecked`].
    pub unchecked: Option<u64>,
    /// See [`AuditEvent::quiet`].
    pub quiet: bool,
}

/// `sha256:<hex>` of `prev_hash` followed by `body`.
pub(crate) fn chain_hash(prev_hash: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(body);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(HASH_LEN);
    out.push_str(HASH_PREFIX);
    for byte in digest.iter() {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Fills `event.hash` and writes its line (with the trailing newline) into `buf`.
pub(crate) fn encode_line(event: &mut AuditEvent, buf: &mut Vec<u8>) -> Result<(), AuditError> {
    event.hash.clear();
    buf.clear();
    serde_json::to_writer(&mut *buf, &*event)?;
    event.hash = chain_hash(&event.prev_hash, buf);
    // Replace the closing brace with `,"hash":"…"}` so the line equals the full event's
    // serialisation (hash is the last field).
    buf.pop();
    buf.extend_from_slice(HASH_FIELD_OPEN);
    buf.extend_from_slice(event.hash.as_bytes());
    buf.extend_from_slice(HASH_FIELD_CLOSE);
    buf.push(b'\n');
    Ok(())
}

/// The `hash` value at the end of a stored line (without its newline), read textually so
/// the chain can continue from a line this version cannot otherwise parse.
pub(crate) fn trailing_hash(line: &[u8]) -> Option<&str> {
    let start = line.len().checked_sub(HASH_FIELD_LEN)?;
    let field = &line[start..];
    let value = field
        .strip_prefix(HASH_FIELD_OPEN)?
        .strip_suffix(HASH_FIELD_CLOSE)?;
    let hex = value.strip_prefix(HASH_PREFIX.as_bytes())?;
    if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// The `id` at the start of a stored line, read textually like [`trailing_hash`].
pub(crate) fn leading_id(line: &[u8]) -> Option<ulid::Ulid> {
    let rest = line.strip_prefix(b"{\"id\":\"")?;
    let id = std::str::from_utf8(rest.get(..ulid::ULID_LEN)?).ok()?;
    ulid::Ulid::from_string(id).ok()
}

const PREV_FIELD_OPEN: &[u8] = b",\"prev_hash\":\"";

/// Why a stored line (without its newline) is not an intact event on its own, whatever
/// line came before it; `None` when its stored `hash` matches its content. Read
/// textually, like [`trailing_hash`], so lines with fields this version does not know
/// still count as intact. Used to find the newest good event at start-up.
pub(crate) fn damage(line: &[u8]) -> Option<String> {
    if line.is_empty() {
        return Some("empty line (the writer never writes one)".into());
    }
    let Some(stored) = trailing_hash(line) else {
        return Some(match serde_json::from_slice::<serde_json::Value>(line) {
            Err(e) => format!("not a valid audit event: {e}"),
            Ok(_) => "no `hash` field of the form sha256:<64 hex> at the end of the line".into(),
        });
    };
    let body = &line[..line.len() - HASH_FIELD_LEN];
    let prev = body
        .len()
        .checked_sub(PREV_FIELD_OPEN.len() + HASH_LEN + 1)
        .and_then(|start| body[start..].strip_prefix(PREV_FIELD_OPEN))
        .and_then(|field| field.strip_suffix(b"\""))
        .and_then(|prev| std::str::from_utf8(prev).ok());
    let Some(prev) = prev else {
        return Some("no `prev_hash` field just before `hash`".into());
    };
    let mut input = Vec::with_capacity(body.len() + 1);
    input.extend_from_slice(body);
    input.push(b'}');
    if chain_hash(prev, &input) != stored {
        return Some("hash mismatch: the event was changed after it was written".into());
    }
    None
}

/// Checks one stored line (without its newline) against the hash of the line before it.
/// The error is the reason shown by `rampart audit verify`.
pub(crate) fn check_line(line: &[u8], expected_prev: &str) -> Result<AuditEvent, String> {
    if line.is_empty() {
        return Err("empty line (the writer never writes one)".into());
    }
    let event: AuditEvent =
        serde_json::from_slice(line).map_err(|e| format!("not a valid audit event: {e}"))?;
    let Some(stored) = trailing_hash(line) else {
        return Err("no `hash` field of the form sha256:<64 hex> at the end of the line".into());
    };
    let body_len = line.len() - HASH_FIELD_LEN;
    let mut hasher_input = Vec::with_capacity(body_len + 1);
    hasher_input.extend_from_slice(&line[..body_len]);
    hasher_input.push(b'}');
    if chain_hash(&event.prev_hash, &hasher_input) != stored {
        return Err("hash mismatch: the event was changed after it was written".into());
    }
    if event.prev_hash != expected_prev {
        return Err(format!(
            "prev_hash {} does not link to the previous event's hash {expected_prev}: an event before this line was removed, inserted or changed",
            event.prev_hash
        ));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditEvent {
        AuditEvent {
            id: "01JDQ7Z4M5X0V9K3T2N1B8C6A4".into(),
            ts: "2026-11-26T06:27:45.123000Z".into(),
            agent: "claude-code".into(),
            session: "s1".into(),
            tool: "exec".into(),
            command: "rm -rf /tmp/x".into(),
            argv: vec!["rm".into(), "-rf".into(), "/tmp/x".into()],
            exe: Some("/usr/bin/rm".into()),
            cwd: None,
            pid: Some(4243),
            ppid: Some(4242),
            via: Some("execve".into()),
            decision: "deny".into(),
            policy: "block-destructive".into(),
            message: "Destructive command blocked".into(),
            eval_us: 3,
            approval: None,
            mode: Some("enforce".into()),
            unchecked: None,
            part_of: None,
            quiet: false,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn line_is_the_full_serialisation_with_hash_last() -> Result<(), AuditError> {
        let mut event = sample();
        let mut buf = Vec::new();
        encode_line(&mut event, &mut buf)?;
        let full = serde_json::to_string(&event)?;
        assert_eq!(buf, format!("{full}\n").into_bytes());
        assert_eq!(
            String::from_utf8_lossy(&buf[..buf.len() - HASH_FIELD_LEN - 1]),
            r#"{"id":"01JDQ7Z4M5X0V9K3T2N1B8C6A4","ts":"2026-11-26T06:27:45.123000Z","agent":"claude-code","session":"s1","tool":"exec","command":"rm -rf /tmp/x","argv":["rm","-rf","/tmp/x"],"exe":"/usr/bin/rm","pid":4243,"ppid":4242,"via":"execve","decision":"deny","policy":"block-destructive","message":"Destructive command blocked","eval_us":3,"mode":"enforce","prev_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000""#
        );
        // The definition, independently of how the writer builds the line.
        let mut unhashed = event.clone();
        unhashed.hash.clear();
        let body = serde_json::to_string(&unhashed)?;
        assert_eq!(event.hash, chain_hash(GENESIS_HASH, body.as_bytes()));
        Ok(())
    }

    #[test]
    fn stored_line_checks_and_reads_back() -> Result<(), AuditError> {
        let mut event = sample();
        let mut buf = Vec::new();
        encode_line(&mut event, &mut buf)?;
        let line = &buf[..buf.len() - 1];
        assert_eq!(check_line(line, GENESIS_HASH), Ok(event.clone()));
        assert_eq!(trailing_hash(line), Some(event.hash.as_str()));
        assert_eq!(
            leading_id(line).map(|id| id.to_string()),
            Some(event.id.clone())
        );
        Ok(())
    }

    #[test]
    fn damage_names_what_is_wrong_with_a_line_on_its_own() -> Result<(), AuditError> {
        let mut event = sample();
        let mut buf = Vec::new();
        encode_line(&mut event, &mut buf)?;
        let line = &buf[..buf.len() - 1];
        assert_eq!(damage(line), None);
        let edited = String::from_utf8_lossy(line).replace("rm -rf", "rm -rF");
        assert_eq!(
            damage(edited.as_bytes()).as_deref(),
            Some("hash mismatch: the event was changed after it was written")
        );
        assert_eq!(
            damage(b"").as_deref(),
            Some("empty line (the writer never writes one)")
        );
        assert!(
            damage(b"garbage").is_some_and(|r| r.starts_with("not a valid audit event: ")),
            "{:?}",
            damage(b"garbage")
        );
        assert_eq!(
            damage(br#"{"id":"x"}"#).as_deref(),
            Some("no `hash` field of the form sha256:<64 hex> at the end of the line")
        );
        Ok(())
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            chain_hash("", b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
