use super::{Glob, find_short};

fn cmd(p: &str, s: &str) -> bool {
    Glob::command(p).is_match(s)
}

fn path(p: &str, s: &str) -> bool {
    Glob::path(p).is_match(s)
}

#[test]
fn command_globs_from_the_design() {
    assert!(cmd("git *", "git push origin main"));
    assert!(cmd("rm -rf /*", "rm -rf /tmp/x"));
    assert!(cmd("rm -rf /*", "rm -rf /"));
    assert!(cmd("dd if=*", "dd if=/dev/zero of=x"));
    assert!(cmd("mkfs.*", "mkfs.ext4 /dev/sda1"));
    assert!(cmd(":(){ :|:& };:", ":(){ :|:& };:"));
    assert!(!cmd("git *", "git"));
    assert!(!cmd("git *", "legit status"));
    assert!(!cmd("rm -rf /*", "sudo rm -rf /"));
    assert!(cmd("**", ""));
    assert!(cmd("*", "anything at all / with slashes"));
    assert!(cmd("a**b", "a/x/y b"));
}

#[test]
fn anchoring_and_question_marks() {
    assert!(cmd("ls", "ls"));
    assert!(!cmd("ls", "ls -la"));
    assert!(!cmd("ls", "l"));
    assert!(cmd("l?", "ls"));
    assert!(!cmd("l?", "l"));
    assert!(cmd("?", "é"));
    assert!(cmd("*.?s", "main.rs"));
    assert!(!cmd("*.?s", "main.r"));
    assert!(cmd("a*b*c", "abc"));
    assert!(cmd("a*b*c", "a-b-b-c"));
    assert!(!cmd("a*b*c", "a-c-b"));
    assert!(cmd("*abc", "abcabc"));
    assert!(!cmd("ab*ba", "aba"), "prefix and suffix must not overlap");
    assert!(cmd("ab*ba", "abba"));
    assert!(cmd("a?*?a", "abca"));
    assert!(!cmd("a?*?a", "aba"));
    assert!(cmd("", ""));
    assert!(!cmd("", "x"));
}

#[test]
fn middle_segments_with_wildcards() {
    assert!(cmd("*c?rl*|*sh*", "curl http://x | sh"));
    assert!(cmd("x*a?c*y", "x--abc--y"));
    assert!(!cmd("x*a?c*y", "x--ab--y"));
    assert!(cmd("*é?*", "caféx"));
}

#[test]
fn path_globs_are_segment_wise() {
    assert!(path("/etc/*", "/etc/shadow"));
    assert!(!path("/etc/*", "/etc/ssh/sshd_config"));
    assert!(path("/etc/**", "/etc/ssh/sshd_config"));
    assert!(path("**/.ssh/id_*", "/home/u/.ssh/id_rsa"));
    assert!(path("**/.ssh/id_*", ".ssh/id_rsa"));
    assert!(!path("**/.ssh/id_*", "/home/u/.ssh/keys/id_rsa"));
    assert!(path("/a/**/b", "/a/b"));
    assert!(path("/a/**/b", "/a/x/y/b"));
    assert!(!path("/a/*/b", "/a/x/y/b"));
    assert!(path("/tmp/?", "/tmp/x"));
    assert!(!path("/tmp/?", "/tmp//"));
    assert!(path("*", "file.txt"));
    assert!(!path("*", "dir/file.txt"));
}

#[test]
fn thousands_of_stars_and_long_subjects_stay_fast() {
    let pattern = "a*".repeat(3000) + "z";
    let subject = "a".repeat(100 * 1024);
    let g = Glob::command(&pattern);
    assert!(!g.is_match(&subject));
    let g = Glob::path(&pattern);
    assert!(!g.is_match(&subject[..5_000]));
}

#[test]
fn matches_everything() {
    assert!(Glob::command("*").matches_everything());
    assert!(Glob::command("***").matches_everything());
    assert!(!Glob::command("*a*").matches_everything());
}

#[test]
fn long_path_patterns_use_the_general_matcher_and_agree() {
    // 70 tokens: beyond the u64 fast path.
    let pattern = format!("/{}/**/x", "a".repeat(66));
    let yes = format!("/{}/b/c/x", "a".repeat(66));
    let no = format!("/{}/b/c/y", "a".repeat(66));
    assert!(path(&pattern, &yes));
    assert!(!path(&pattern, &no));
    assert!(path(&pattern, &format!("/{}/x", "a".repeat(66))));
}

#[test]
fn middle_segments_are_found_in_short_and_long_subjects() {
    let g = Glob::command("rm * $HOME *");
    assert!(g.is_match("rm -rf $HOME x"));
    assert!(!g.is_match("rm -rf $HOMEx"));
    assert!(!g.is_match("rm -rf node_modules"));
    let long = format!("rm {} $HOME x", "a".repeat(200));
    assert!(g.is_match(&long));
    assert!(!g.is_match(&long.replace("$HOME", "$HOMR")));
    assert_eq!(find_short(b"abcabd", b"abd"), Some(3));
    assert_eq!(find_short(b"ab", b"abc"), None);
    assert_eq!(find_short(b"ab", b""), Some(0));
}

#[test]
fn inner_literal_is_the_longest_run_after_the_prefix() {
    assert_eq!(Glob::command("rm * ${HOME}/?").inner_literal(), " ${HOME}/");
    assert_eq!(Glob::command("git *").inner_literal(), "");
    assert_eq!(Glob::command("git").inner_literal(), "");
    assert_eq!(
        Glob::command("*.ssh/id_rsa *").inner_literal(),
        ".ssh/id_rsa "
    );
    assert_eq!(Glob::path("/home/*/x").inner_literal(), "");
}
