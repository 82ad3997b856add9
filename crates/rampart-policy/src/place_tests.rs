//! Unit tests of the place module: lexical normalisation, resolution, operands per program.

use super::*;

const HOME: Option<&str> = Some("/home/u");
const PROJ: Option<&str> = Some("/home/u/proj");

fn paths(piece: &str, place: Option<&str>) -> Vec<String> {
    targets(piece, place, HOME).paths
}

#[test]
fn normalize_is_lexical() {
    for (input, expected) in [
        ("/", Some("/")),
        ("//", Some("/")),
        ("/home//u/", Some("/home/u")),
        ("/usr/../home", Some("/home")),
        ("/root/..", Some("/")),
        ("/../..", Some("/")),
        ("/a/./b/.", Some("/a/b")),
        ("/a/b/../../..", Some("/")),
        ("~", Some("~")),
        ("~/x/../..", Some("~")),
        ("relative", None),
        ("~user", None),
    ] {
        assert_eq!(normalize(input).as_deref(), expected, "{input}");
    }
}

#[test]
fn resolve_uses_place_and_home() {
    for (word, place, expected) in [
        ("build", PROJ, Some("/home/u/proj/build")),
        ("./target/*", PROJ, Some("/home/u/proj/target/*")),
        ("*", HOME, Some("/home/u/*")),
        (".", HOME, Some("/home/u")),
        ("..", PROJ, Some("/home/u")),
        ("../other", PROJ, Some("/home/u/other")),
        ("~", PROJ, Some("/home/u")),
        ("~/", PROJ, Some("/home/u")),
        ("$HOME/x", PROJ, Some("/home/u/x")),
        ("${HOME}", PROJ, Some("/home/u")),
        ("~bob/x", PROJ, Some("/home/bob/x")),
        ("~root", PROJ, Some("/root")),
        ("/home//u", PROJ, Some("/home/u")),
        ("build", None, None),
        ("$DIR/x", PROJ, None),
        ("", PROJ, None),
    ] {
        assert_eq!(resolve(word, place, HOME).as_deref(), expected, "{word}");
    }
    assert_eq!(resolve("~/x", None, None).as_deref(), Some("~/x"));
}

#[test]
fn operands_per_program() {
    assert_eq!(
        paths("rm -rf build dist", PROJ),
        ["/home/u/proj/build", "/home/u/proj/dist"]
    );
    assert_eq!(paths("rm -rf -- -weird", PROJ), ["/home/u/proj/-weird"]);
    assert_eq!(paths("rm -rf x 2> /dev/null", PROJ), ["/home/u/proj/x"]);
    assert_eq!(paths("chmod -R 000 ~", PROJ), ["/home/u"]);
    assert_eq!(paths("chmod -w a", PROJ), ["/home/u/proj/a"]);
    assert_eq!(paths("chmod --reference=r a", PROJ), ["/home/u/proj/a"]);
    assert_eq!(paths("chown -R bob:bob /home/u", PROJ), ["/home/u"]);
    assert_eq!(paths("truncate -s 0 ~/.bashrc", PROJ), ["/home/u/.bashrc"]);
    assert_eq!(paths("shred -n 3 -u f", PROJ), ["/home/u/proj/f"]);
    assert_eq!(paths("dd if=/dev/zero of=../x bs=1M", PROJ), ["/home/u/x"]);
    assert_eq!(paths("find ~/ -delete", PROJ), ["/home/u/*"]);
    assert_eq!(paths("find / -delete", PROJ), ["/*"]);
    assert_eq!(paths("find -name x -delete", HOME), ["/home/u/*"]);
    assert_eq!(
        paths("find . -name '*.o' -exec rm {} +", PROJ),
        ["/home/u/proj/*"]
    );
    assert!(paths("find / -name x", PROJ).is_empty());
    assert!(paths("grep -r rm -rf src/", PROJ).is_empty());
    assert!(paths("ls ~", PROJ).is_empty());
    // Output redirections are writes; `rm`'s own redirections are not what it deletes.
    assert_eq!(paths("echo x >> ~/.bashrc", PROJ), ["/home/u/.bashrc"]);
    assert_eq!(
        paths("echo x > out.txt 2> /dev/null", PROJ),
        ["/home/u/proj/out.txt"]
    );
    assert!(paths("make 2>&1", PROJ).is_empty());
    assert_eq!(paths("make 2>&1 > log", PROJ), ["/home/u/proj/log"]);
    assert!(paths("sort < in.txt", PROJ).is_empty());
    assert_eq!(targets("tee a > b", PROJ, HOME).effect, Some(Effect::Write));
}

#[test]
fn cd_moves_the_place() {
    assert_eq!(moves("cd /", PROJ, HOME), Move::To(Some("/".to_owned())));
    assert_eq!(
        moves("cd", PROJ, HOME),
        Move::To(Some("/home/u".to_owned()))
    );
    assert_eq!(
        moves("cd ..", PROJ, HOME),
        Move::To(Some("/home/u".to_owned()))
    );
    assert_eq!(
        moves("cd -P sub", PROJ, HOME),
        Move::To(Some("/home/u/proj/sub".to_owned()))
    );
    assert_eq!(moves("cd -", PROJ, HOME), Move::To(None));
    assert_eq!(moves("popd", PROJ, HOME), Move::To(None));
    assert_eq!(moves("ls", PROJ, HOME), Move::Stay);
}

#[test]
fn the_tree_is_the_cwd_below_home() {
    let tree = |cwd| {
        Context {
            cwd: Some(cwd),
            home: HOME,
        }
        .tree()
    };
    assert_eq!(tree("/home/u/proj/"), Some("/home/u/proj".to_owned()));
    assert_eq!(tree("/srv/app"), Some("/srv/app".to_owned()));
    assert_eq!(tree("/home/u"), None);
    assert_eq!(tree("/home"), None);
    assert_eq!(tree("/"), None);
}

#[test]
fn target_globs_anchor_at_home_and_tree() {
    let tree = Some("/home/u/proj");
    let m = |pattern: &str, path: &str| TargetGlob::new(pattern).is_match(path, "/home/u", tree);
    assert!(m("~", "/home/u"));
    assert!(!m("~", "/home/u/x"));
    assert!(m("~/*", "/home/u/x"));
    assert!(m("~/*", "/home/u/*"));
    assert!(!m("~/*", "/home/u/x/y"));
    assert!(m("~/**", "/home/u/x/y"));
    assert!(!m("~/**", "/home/user2/x"));
    assert!(m("$HOME/*", "/home/u/x"));
    assert!(m("$CWD/**", "/home/u/proj/build"));
    assert!(m("$CWD", "/home/u/proj"));
    assert!(!m("$CWD/**", "/home/u/other"));
    assert!(!TargetGlob::new("$CWD/**").is_match("/home/u/proj/x", "/home/u", None));
    assert!(m("/", "/"));
    assert!(m("/usr/*", "/usr/lib"));
}
