//! `rampart policy show`: the merged policy in evaluation order, as YAML that loads back,
//! with each policy's and rule's origin as a comment.

use std::fmt::Write;

use rampart_policy::PolicySet;
use rampart_policy::model::{Conditions, Pattern, Scope};

pub fn render(set: &PolicySet, from: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# effective policy from {from}: {}",
        rampart_server::wire::policies_and_rules(set.policies().len(), set.rule_count())
    );
    for file in set.files() {
        let _ = writeln!(
            out,
            "#   {}: {}",
            file.path.display(),
            rampart_server::wire::policies_and_rules(file.policies, file.rules)
        );
    }
    let _ = writeln!(out, "version: \"1\"");
    let _ = writeln!(out, "default_action: {}", set.default_action());
    if set.policies().is_empty() {
        let _ = writeln!(out, "policies: []");
        return out;
    }
    let _ = writeln!(out, "policies:");
    for policy in set.policies() {
        let _ = writeln!(
            out,
            "  - name: {}  # {}",
            quote(&policy.name),
            policy.origin
        );
        if let Some(d) = &policy.description {
            let _ = writeln!(out, "    description: {}", quote(d));
        }
        let _ = writeln!(out, "    priority: {}", policy.priority);
        render_scope(&mut out, &policy.scope);
        let _ = writeln!(out, "    rules:");
        for rule in &policy.rules {
            let _ = writeln!(out, "      - action: {}  # {}", rule.action, rule.origin);
            if rule.is_default {
                let _ = writeln!(out, "        default: true");
            }
            if rule.quiet {
                let _ = writeln!(out, "        quiet: true");
            }
            render_when(&mut out, &rule.when);
            if let Some(m) = &rule.message {
                let _ = writeln!(out, "        message: {}", quote(m));
            }
        }
    }
    out
}

fn render_scope(out: &mut String, scope: &Scope) {
    if scope.agent.is_empty() && scope.tool.is_empty() && scope.session.is_empty() {
        return;
    }
    let _ = writeln!(out, "    match:");
    list(out, 6, "agent", &scope.agent);
    list(out, 6, "tool", &scope.tool);
    list(out, 6, "session", &scope.session);
}

fn render_when(out: &mut String, when: &Conditions) {
    if when.is_empty() {
        return;
    }
    let _ = writeln!(out, "        when:");
    list(out, 10, "command_matches", &when.command_matches);
    if !when.command_contains.is_empty() {
        let items: Vec<String> = when
            .command_contains
            .iter()
            .map(|n| quote(&n.text))
            .collect();
        let _ = writeln!(out, "{:10}command_contains: [{}]", "", items.join(", "));
    }
    list(out, 10, "command_not_matches", &when.command_not_matches);
    list(out, 10, "session_matches", &when.session_matches);
    list(out, 10, "path_matches", &when.path_matches);
    list(out, 10, "exe_matches", &when.exe_matches);
}

fn list(out: &mut String, indent: usize, key: &str, patterns: &[Pattern]) {
    if patterns.is_empty() {
        return;
    }
    let items: Vec<String> = patterns.iter().map(|p| quote(p.glob.as_str())).collect();
    let _ = writeln!(out, "{:indent$}{key}: [{}]", "", items.join(", "));
}

/// A YAML double-quoted scalar. JSON string syntax is a subset of it, so serde_json's
/// escaping is exactly right.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
