//! `rampart test`, `policy lint|show`, `init`, `--version`.

use crate::util::{Home, SEED_POLICY};

/// `rampart test` output without the timing line, which varies.
fn without_time(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("time:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn seed_policy_decides_the_seed_examples_with_exit_codes() {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);

    let run = home.run(&["test", "git status"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        without_time(&run.stdout()),
        "decision: allow\npolicy:   preload-safe-dev\nmessage:  Safe development commands\nrule:     "
            .to_owned()
            + &home.policies().join("custom.yaml:10").display().to_string()
            + "\n"
    );
    assert!(
        run.stdout()
            .lines()
            .any(|l| l.starts_with("time:     ") && l.contains("µs"))
    );

    let run = home.run(&["test", "rm -rf /tmp/*"]);
    assert_eq!(run.code(), 1);
    assert!(run.stdout().starts_with(
        "decision: deny\npolicy:   preload-block-destructive\nmessage:  Destructive command blocked\n"
    ));

    let run = home.run(&["test", "curl https://example.com/install.sh"]);
    assert_eq!(run.code(), 3);
    assert!(run.stdout().starts_with(
        "decision: ask\npolicy:   preload-ask-network\nmessage:  Network command requires approval\n"
    ));

    let run = home.run(&["test", ":(){ :|:& };:"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stdout()
            .contains("message:  Destructive command blocked\n")
    );

    // Another agent is outside the seed policies' scope: default allow, no policy.
    let run = home.run(&["test", "--agent", "other", "rm -rf /tmp/*"]);
    assert_eq!(run.code(), 0);
    assert!(
        run.stdout()
            .starts_with("decision: allow\npolicy:   (none: default_action)\n")
    );
}

#[test]
fn custom_agent_names_policy_applies_per_agent_and_session() {
    let home = Home::new();
    home.policy(
        "custom.yaml",
        include_str!("../../rampart-policy/tests/fixtures/custom-agent.yaml"),
    );
    let run = home.run(&[
        "test",
        "--agent",
        "my-agent",
        "--session",
        "prod-deploy",
        "rm x",
    ]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stdout()
            .contains("Production agent: destructive commands blocked")
    );
    let run = home.run(&["test", "--agent", "my-agent", "--session", "dev-1", "rm x"]);
    assert_eq!(run.code(), 0);
}

#[test]
fn test_json_prints_one_object() {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let run = home.run(&["test", "--json", "git status && rm -rf /tmp/x"]);
    assert_eq!(run.code(), 1);
    let v: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["message"], "Destructive command blocked");
    assert_eq!(
        v["matched_policies"],
        serde_json::json!(["preload-block-destructive"])
    );
    assert_eq!(
        v["pieces"],
        serde_json::json!(["git status", "rm -rf /tmp/x"])
    );
    assert!(v["eval_duration_ns"].as_u64().is_some());
    assert_eq!(run.stdout().trim().lines().count(), 1);
}

#[test]
fn typo_in_a_key_is_reported_with_file_line_and_hint() {
    let home = Home::new();
    let path = home.policy(
        "custom.yaml",
        &SEED_POLICY.replacen("command_matches", "comand_matches", 1),
    );
    let expected = format!(
        "{}:12:11: unknown key `comand_matches` in `when`; valid keys: command_matches, command_contains, \
         command_not_matches, session_matches, path_matches, target_matches, \
         target_not_matches, exe_matches (did you mean `command_matches`?)",
        path.display()
    );

    let run = home.run(&["test", "git status"]);
    assert_eq!(run.code(), 2);
    assert_eq!(
        run.stderr(),
        format!("rampart: error: loading policies: {expected}\n")
    );
    assert_eq!(run.stdout(), "");

    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 1);
    let expected_lint = expected.replacen(": unknown key", ": error: unknown key", 1);
    assert_eq!(
        run.stdout(),
        format!("{expected_lint}\n1 file(s), 0 policies, 0 rules: 1 error(s), 0 warning(s)\n")
    );
}

#[test]
fn lint_warns_about_short_substrings_in_the_seed() {
    let home = Home::new();
    let path = home.policy("custom.yaml", SEED_POLICY);
    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let out = run.stdout();
    assert!(
        out.contains(&format!("{}:40: warning: ", path.display())) && out.contains("`sync`"),
        "{out}"
    );
    assert!(
        out.ends_with("1 file(s), 3 policies, 3 rules: 0 error(s), 1 warning(s)\n"),
        "{out}"
    );

    // Explicit file arguments are linted the same way.
    let run = home.run(&["policy", "lint", path.to_str().unwrap()]);
    assert_eq!(run.code(), 0);
}

#[test]
fn no_policy_files_means_the_embedded_standard_profile() {
    let home = Home::new();
    let run = home.run(&["test", "rm -rf /"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let run = home.run(&["test", "cargo build --release"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let run = home.run(&["policy", "show"]);
    assert_eq!(run.code(), 0);
    assert!(
        run.stdout()
            .starts_with("# effective policy from embedded standard profile: ")
    );
}

#[test]
fn policy_show_prints_yaml_that_loads_back() {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let run = home.run(&["policy", "show"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let shown = run.stdout();
    let reparsed =
        rampart_policy::load::parse_str(std::path::Path::new("shown.yaml"), &shown).unwrap();
    assert_eq!(reparsed.policies.len(), 3);
    assert!(shown.contains("  - name: \"preload-block-destructive\"  # "));
    assert!(
        shown.contains(
            "command_matches: [\"rm -rf /*\", \"dd if=*\", \"mkfs.*\", \":(){ :|:& };:\"]"
        )
    );
}

#[test]
fn init_writes_a_starter_and_keeps_existing_files() {
    let home = Home::new();
    let run = home.run(&["init"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(home.policies().join("custom.yaml").is_file());
    assert!(home.policies().join("standard.yaml").is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // The starter lints clean and the standard protections still apply.
    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert_eq!(home.run(&["test", "rm -rf /"]).code(), 1);
    std::fs::write(home.policies().join("custom.yaml"), "# mine\n").unwrap();
    let run = home.run(&["init"]);
    assert!(run.stdout().contains("(already exists)"));
    assert_eq!(
        std::fs::read_to_string(home.policies().join("custom.yaml")).unwrap(),
        "# mine\n"
    );
}

/// `rampart init --profile` (issue 16): the shipped profiles can be listed and chosen; a
/// second profile copied next to the first says which file to remove; `--profile` over an
/// installed profile replaces it (an edited one is kept as `.bak`), custom.yaml stays.
#[test]
fn init_profile_lists_chooses_and_replaces_profiles() {
    let home = Home::new();
    let dir = home.policies();
    let d = dir.display().to_string();
    let list = |installed: &str| {
        let mark = |n: &str| if n == installed { '*' } else { ' ' };
        format!(
            "{} standard  everyday development runs; destroying, credential reading and switching Rampart off are refused (the default)\n\
             {} paranoid  only read-only developer commands run; everything else is refused\n\
             {} yolo      nothing is blocked or waits; every command is recorded\n",
            mark("standard"),
            mark("paranoid"),
            mark("yolo")
        )
    };
    let run = home.run(&["init", "--list"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        list("")
            + &format!(
                "(none installed in {d}; with no policy file there the embedded standard profile applies)\n"
            )
    );

    let run = home.run(&["init"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        format!(
            "created {d}/standard.yaml\ncreated {d}/custom.yaml\n\
             Edit {d}/custom.yaml and check it with `rampart policy lint`.\n"
        )
    );
    assert_eq!(
        home.run(&["init", "--list"]).stdout(),
        list("standard") + &format!("(* installed in {d})\n")
    );

    // Copying a second profile in by hand: nothing loads, and the error names both
    // places and the file to remove.
    let paranoid = include_str!("../../../policies/paranoid.yaml");
    std::fs::write(dir.join("paranoid.yaml"), paranoid).unwrap();
    let run = home.run(&["test", "ls"]);
    assert_eq!(run.code(), 2);
    let line = |n: usize, needle: &str| {
        let text = if n == 0 {
            paranoid.to_owned()
        } else {
            std::fs::read_to_string(dir.join("standard.yaml")).unwrap()
        };
        1 + text.lines().position(|l| l == needle).unwrap()
    };
    let (p, s) = (
        line(0, "  - name: block-destructive-deletes"),
        line(1, "  - name: block-destructive-deletes"),
    );
    assert_eq!(
        run.stderr(),
        format!(
            "rampart: error: loading policies: policy `block-destructive-deletes` is defined twice: \
             {d}/paranoid.yaml:{p} and {d}/standard.yaml:{s}; remove one of them, e.g. `rm {d}/standard.yaml`\n"
        )
    );
    std::fs::remove_file(dir.join("paranoid.yaml")).unwrap();

    // --profile replaces the installed profile; the user's custom.yaml is kept.
    std::fs::write(dir.join("custom.yaml"), "# mine\n").unwrap();
    let run = home.run(&["init", "--profile", "paranoid"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        format!(
            "removed {d}/standard.yaml (replaced by paranoid)\ncreated {d}/paranoid.yaml\n\
             kept    {d}/custom.yaml (already exists)\n\
             Edit {d}/custom.yaml and check it with `rampart policy lint`.\n"
        )
    );
    assert_eq!(home.run(&["policy", "lint"]).code(), 0);
    assert_eq!(home.run(&["test", "git status"]).code(), 0);
    assert_eq!(home.run(&["test", "make"]).code(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("custom.yaml")).unwrap(),
        "# mine\n"
    );

    // An edited profile is not thrown away; plain init keeps whatever profile is there.
    std::fs::write(dir.join("paranoid.yaml"), format!("{paranoid}# edited\n")).unwrap();
    let run = home.run(&["init", "--profile", "yolo"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().starts_with(&format!(
        "moved   {d}/paranoid.yaml to {d}/paranoid.yaml.bak (edited; replaced by yolo)\n\
         created {d}/yolo.yaml\n"
    )));
    assert!(dir.join("paranoid.yaml.bak").is_file());
    let run = home.run(&["init"]);
    assert!(
        run.stdout()
            .starts_with(&format!("kept    {d}/yolo.yaml (already exists)\n"))
    );
    assert!(!dir.join("standard.yaml").exists());
    assert_eq!(home.run(&["test", "make"]).code(), 0);

    let run = home.run(&["init", "--profile", "nope"]);
    assert_eq!(run.code(), 2);
    assert_eq!(
        run.stderr(),
        "rampart: error: no profile `nope`; the shipped profiles are standard, paranoid, yolo (see `rampart init --list`)\n"
    );
}

/// `rampart policy lint` (issue 16) reports every error of every file, each at
/// file:line:col, not the first per file: unknown keys, wrong types, bad actions, a
/// duplicate policy and every failing inline test, then exits 1.
#[test]
fn lint_reports_every_error_in_every_file() {
    let home = Home::new();
    let bad = home.policy(
        "a.yaml",
        "version: \"1\"\n\
         default_action: alow\n\
         policies:\n\
         \x20 - name: one\n\
         \x20   priorty: 5\n\
         \x20   rules:\n\
         \x20     - action: block\n\
         \x20       when:\n\
         \x20         comand_matches: [\"rm *\"]\n\
         \x20     - action: deny\n\
         \x20       when:\n\
         \x20         command_matches: [\"shred *\"]\n\
         \x20       enabled: maybe\n\
         \x20 - name: two\n\
         \x20   match:\n\
         \x20     agnt: [\"x\"]\n\
         \x20   rules:\n\
         \x20     - action: allow\n\
         \x20       when:\n\
         \x20         command_matches: 7\n\
         \x20 - name: one\n\
         \x20   rules: []\n",
    );
    let tested = home.policy(
        "b.yaml",
        "policies:\n\
         \x20 - name: deny-rm\n\
         \x20   rules:\n\
         \x20     - action: deny\n\
         \x20       when:\n\
         \x20         command_matches: [\"rm *\"]\n\
         tests:\n\
         \x20 - command: \"rm -rf x\"\n\
         \x20   expect: allow\n\
         \x20 - command: \"ls\"\n\
         \x20   expect: allow\n\
         \x20 - command: \"rm y\"\n\
         \x20   expect: ask\n",
    );
    let (a, b) = (bad.display(), tested.display());
    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        format!(
            "{a}:2:17: error: unknown action `alow`; valid actions: allow, deny, ask, log, watch (did you mean `allow`?)\n\
             {a}:5:5: error: unknown key `priorty` in a policy; valid keys: name, description, priority, enabled, match, rules (did you mean `priority`?)\n\
             {a}:7:17: error: unknown action `block`; valid actions: allow, deny, ask, log, watch (did you mean `deny`?)\n\
             {a}:9:11: error: unknown key `comand_matches` in `when`; valid keys: command_matches, command_contains, command_not_matches, session_matches, path_matches, target_matches, target_not_matches, exe_matches (did you mean `command_matches`?)\n\
             {a}:13:18: error: `enabled` must be true or false, found a string\n\
             {a}:16:7: error: unknown key `agnt` in `match`; valid keys: agent, tool, session, session_matches (did you mean `agent`?)\n\
             {a}:20:28: error: `command_matches` must be a string or a list of strings, found an integer\n\
             {a}:21: error: policy `one` is defined twice: {a}:4 and {a}:21\n\
             {b}:8:5: error: inline test failed: `rm -rf x` in /home/user/project: expected allow, got deny (policy deny-rm at {b}:4)\n\
             {b}:12:5: error: inline test failed: `rm y` in /home/user/project: expected ask, got deny (policy deny-rm at {b}:4)\n\
             2 file(s), 0 policies, 0 rules: 10 error(s), 0 warning(s)\n"
        )
    );
    // The server still refuses the file at its first error.
    let run = home.run(&["test", "ls"]);
    assert_eq!(run.code(), 2);
    assert_eq!(
        run.stderr(),
        format!(
            "rampart: error: loading policies: {a}:2:17: unknown action `alow`; valid actions: allow, deny, ask, log, watch (did you mean `allow`?)\n"
        )
    );
}

#[test]
fn version_and_usage_errors() {
    let home = Home::new();
    let run = home.run(&["--version"]);
    assert_eq!(run.code(), 0);
    assert_eq!(
        run.stdout(),
        format!("rampart {}\n", env!("CARGO_PKG_VERSION"))
    );
    let run = home.run(&["test"]);
    assert_eq!(run.code(), 2);
    let run = home.run(&["no-such-command"]);
    assert_eq!(run.code(), 2);
}

/// `rampart test --cwd DIR` evaluates where the command would run (issue 14): the same
/// `rm -rf *` is a project cleanup in the working tree and the home directory's end in
/// the home; without `--cwd` the current directory is the place. Paths need not exist.
#[test]
fn test_cwd_judges_the_place_and_json_shows_resolved_paths() {
    let home = Home::new(); // no policy files: the embedded standard profile
    let run_in = |dir: &std::path::Path, args: &[&str]| {
        crate::util::Run(
            home.cmd()
                .env("HOME", "/home/u")
                .current_dir(dir)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let here = home.path();

    let run = run_in(here, &["test", "--cwd", "/home/u", "rm -rf *"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    assert!(run.stdout().starts_with(
        "decision: deny\npolicy:   protect-places\nmessage:  Deleting the root, a system \
         directory, a home directory or a direct child of one is blocked\n"
    ));
    let run = run_in(here, &["test", "--cwd", "/home/u/proj", "rm -rf *"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let run = run_in(
        here,
        &["test", "--cwd", "/home/u/proj", "rm -rf ~/other/src"],
    );
    assert_eq!(run.code(), 3, "{}", run.stdout());

    // The current directory by default, and a relative --cwd is taken from it.
    let scratch = here.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    assert_eq!(run_in(&scratch, &["test", "rm -rf *"]).code(), 0);
    let run = run_in(
        here,
        &["test", "--json", "--cwd", "scratch/../x", "rm -rf ."],
    );
    let v: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(v["cwd"], here.join("x").display().to_string());

    let run = run_in(
        here,
        &[
            "test",
            "--json",
            "--cwd",
            "/home/u/proj",
            "cd .. && rm -rf other/ ./p//q/..",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let v: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(v["cwd"], "/home/u/proj");
    assert_eq!(v["decision"], "deny");
    assert_eq!(
        v["places"],
        serde_json::json!([{
            "piece": "rm -rf other/ ./p//q/..",
            "cwd": "/home/u",
            "effect": "delete",
            "paths": ["/home/u/other", "/home/u/p"],
        }])
    );

    let run = run_in(here, &["test", "--cwd", "", "ls"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().starts_with(
        "error: a value is required for '--cwd <DIR>' but none was supplied
"
    ));
}

/// Under the real library, the server judges where an exec runs (issue 14, family 1): a
/// script (whose text the policy never sees) that `cd /` and runs `rm -rf usr`, or `rm
/// -rf *` there, is refused — the old engine saw only the word `usr` and let it run — while
/// `rm -rf build` in the project runs. `rm` is a fake that records its argv; the real one
/// is never reached.
#[test]
fn preload_judges_the_directory_an_exec_runs_in() {
    let lib =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/build/librampart.so");
    assert!(
        lib.is_file(),
        "{} is missing: run `make -C preload` first",
        lib.display()
    );
    let home = Home::new(); // no policy files: the embedded standard profile
    let server = crate::util::Server::start(&home, &[]);
    let work = tempfile::Builder::new()
        .prefix("rampart-place-")
        .tempdir()
        .unwrap();
    let bin = work.path().join("bin");
    let proj = work.path().join("proj");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(proj.join("build")).unwrap();
    let log = work.path().join("rm.log");
    let fake_rm = bin.join("rm");
    std::fs::write(
        &fake_rm,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_rm,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = work.path().join("agent.sh");
    std::fs::write(
        &script,
        "cd / && rm -rf usr; echo \"usr: $?\"\n\
         cd / && rm -rf *; echo \"star: $?\"\n\
         cd \"$1\" && rm -rf build; echo \"build: $?\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .env_clear()
        .env("RAMPART_HOME", home.path())
        .env("HOME", home.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("LC_ALL", "C")
        .current_dir(&proj)
        .args([
            "preload",
            "--url",
            &format!("http://127.0.0.1:{}", server.port),
        ])
        .args([
            "--no-autostart",
            "--token",
            &server.token,
            "--ask-timeout",
            "5s",
            "--",
        ])
        .args([
            "/bin/sh",
            &script.display().to_string(),
            &proj.display().to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = crate::util::Run(output);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        "usr: 126\nstar: 126\nbuild: 0\n",
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "-rf build\n");
    // sh tries each PATH entry after EPERM, so each refused `rm` may print more than once.
    let denied: Vec<String> = run
        .stderr()
        .lines()
        .filter(|l| l.starts_with("rampart: [ERROR] Policy denied: "))
        .map(str::to_owned)
        .collect();
    assert!(denied.len() >= 2, "{}", run.stderr());
    assert!(
        denied.iter().all(|l| l
            == "rampart: [ERROR] Policy denied: Deleting the root, a system directory, a home \
                directory or a direct child of one is blocked"),
        "{denied:?}"
    );
}

/// A policy file's `tests:` run at load and in `policy lint`: a failing one refuses the
/// file with its `file:line:col`, like any other mistake in it.
#[test]
fn inline_policy_tests_are_run_by_lint_and_at_load() {
    let home = Home::new();
    let policy = "version: \"1\"\npolicies:\n  - name: no-rm\n    rules:\n      - action: deny\n        \
                  when: { command_matches: [\"rm *\"] }\ntests:\n  - { command: \"ls\", expect: allow }\n  \
                  - { command: \"rm -rf build\", expect: allow }\n";
    let path = home.policy("custom.yaml", policy);
    let expected = format!(
        "{}:9:5: error: inline test failed: `rm -rf build` in /home/user/project: expected \
         allow, got deny (policy no-rm at {}:5)",
        path.display(),
        path.display()
    );
    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 1);
    assert_eq!(
        run.stdout(),
        format!("{expected}\n1 file(s), 0 policies, 0 rules: 1 error(s), 0 warning(s)\n")
    );
    let run = home.run(&["test", "ls"]);
    assert_eq!(run.code(), 2);
    assert_eq!(
        run.stderr(),
        format!(
            "rampart: error: loading policies: {}\n",
            expected.replacen(": error: inline", ": inline", 1)
        )
    );

    home.policy(
        "custom.yaml",
        &policy.replace(
            "\"rm -rf build\", expect: allow",
            "\"rm -rf build\", expect: deny",
        ),
    );
    let run = home.run(&["policy", "lint"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
}

/// The server judges the program an exec really runs (issue 14, family 2): a renamed
/// copy of `rm`, a symlink to it and a script whose `#!` line names it are each refused
/// like `rm` itself, while the same names for `ls` run. Only preflights are made: nothing
/// is executed.
#[test]
fn preflight_sees_renamed_copies_symlinks_and_shebangs_of_denied_programs() {
    let home = Home::new(); // the embedded standard profile
    let server = crate::util::Server::start(&home, &[]);
    let dir = tempfile::tempdir().unwrap();
    let rm = std::fs::canonicalize("/usr/bin/rm").unwrap();
    let copy = dir.path().join("cleanup");
    std::fs::copy(&rm, &copy).unwrap();
    let link = dir.path().join("tidy");
    std::os::unix::fs::symlink(&rm, &link).unwrap();
    let script = dir.path().join("wipe");
    std::fs::write(&script, "#!/bin/rm -rf\n").unwrap();
    let ls_copy = dir.path().join("lister");
    std::fs::copy("/bin/ls", &ls_copy).unwrap();

    let decide = |exe: &std::path::Path, args: &str| {
        let name = exe.file_name().unwrap().to_str().unwrap();
        let v = server.preflight(serde_json::json!({
            "agent": "preload",
            "params": {"command": format!("{name} {args}")},
            "exe": exe.to_str().unwrap(),
            "cwd": "/tmp",
        }));
        v["decision"].as_str().unwrap().to_owned()
    };
    assert_eq!(decide(&copy, "-rf /"), "deny");
    assert_eq!(decide(&link, "-rf /"), "deny");
    assert_eq!(decide(&script, "/"), "deny");
    assert_eq!(decide(&copy, "-f /tmp/x"), "allow");
    assert_eq!(decide(&ls_copy, "-la /"), "allow");
}
