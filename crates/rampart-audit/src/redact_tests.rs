use super::*;

#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(redact(input), expected, "input: {input}");
}

const GHP: &str = "ghp_1234567890abcdefghijABCDEFGHIJ123456";
const RAMPART: &str = "rampart_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn bearer_tokens_and_authorization_headers() {
    check(
        r#"curl -H "Authorization: Bearer abc.def-123" https://api.example"#,
        r#"curl -H "Authorization: Bearer [REDACTED]" https://api.example"#,
    );
    check("Bearer xyz", "Bearer [REDACTED]");
    check(
        "curl -H 'authorization: bearer xyz'",
        "curl -H 'authorization: bearer [REDACTED]'",
    );
    check(
        "curl -H 'Authorization: Basic dXNlcjpwYXNz' x",
        "curl -H 'Authorization: Basic [REDACTED]' x",
    );
    check(
        "curl -H 'Authorization: rawtoken' x",
        "curl -H 'Authorization: [REDACTED]' x",
    );
    check(
        r#"curl -H "Authorization: Bearer $TOKEN""#,
        r#"curl -H "Authorization: Bearer $TOKEN""#,
    );
}

#[test]
fn password_options() {
    check(
        "psql --password=hunter2 -h db",
        "psql --password=[REDACTED] -h db",
    );
    check(
        "tool --password hunter2 -v",
        "tool --password [REDACTED] -v",
    );
    check(
        "tool --password 'two words' -v",
        "tool --password '[REDACTED]' -v",
    );
    check("tool --token abc123", "tool --token [REDACTED]");
    check(
        "tool --api-key=abc123 --secret s3",
        "tool --api-key=[REDACTED] --secret [REDACTED]",
    );
    check("tool --password --verbose", "tool --password --verbose");
}

#[test]
fn mysql_style_dash_p_only_for_mysql_clients() {
    check(
        "mysql -u root -psecret mydb",
        "mysql -u root -p[REDACTED] mydb",
    );
    check(
        "/usr/bin/mysqldump -pS3cr3t! db",
        "/usr/bin/mysqldump -p[REDACTED] db",
    );
    check("mariadb -p'pa ss' db", "mariadb -p'[REDACTED]' db");
    check("mysql -u root -p mydb", "mysql -u root -p mydb");
    // For MySQL `--password` alone prompts; the next word is the database.
    check("mysql --password mydb", "mysql --password mydb");
    check("mkdir -p dir", "mkdir -p dir");
    check("mkdir -pv dir", "mkdir -pv dir");
    check(
        "mysql -psecret; mkdir -pv dir",
        "mysql -p[REDACTED]; mkdir -pv dir",
    );
    check(
        "mysql -psecret\nmkdir -pv dir",
        "mysql -p[REDACTED]\nmkdir -pv dir",
    );
    check(
        "mkdir -pv d && mysql -psecret",
        "mkdir -pv d && mysql -p[REDACTED]",
    );
    check("sh -c 'mysql -psecret'", "sh -c 'mysql -p[REDACTED]'");
    check(
        "sshpass -p hunter2 ssh host",
        "sshpass -p [REDACTED] ssh host",
    );
    check(
        "sshpass -phunter2 ssh host",
        "sshpass -p[REDACTED] ssh host",
    );
}

#[test]
fn aws_keys() {
    check(
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls",
        "AWS_ACCESS_KEY_ID=[REDACTED] aws s3 ls",
    );
    check(
        "aws configure set aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws configure set aws_secret_access_key=[REDACTED]",
    );
    check(
        "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG",
        "export AWS_SECRET_ACCESS_KEY=[REDACTED]",
    );
    // Not 16 characters after the prefix, or part of a longer word: not a key id.
    check("echo AKIASHORT", "echo AKIASHORT");
    check("echo XAKIAIOSFODNN7EXAMPLE", "echo XAKIAIOSFODNN7EXAMPLE");
}

#[test]
fn github_openai_and_rampart_tokens() {
    check(
        &format!("git clone https://{GHP}@github.com/o/r"),
        "git clone https://[REDACTED]@github.com/o/r",
    );
    check(
        "gh auth login --with-token gho_abcdefghijklmnopqrstuvwxyz",
        "gh auth login --with-token [REDACTED]",
    );
    check(
        "echo github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "echo [REDACTED]",
    );
    check("echo ghs_short", "echo ghs_short");
    check(
        "OPENAI_KEY=sk-proj-abcdefghijklmnopqrstuv python app.py",
        "OPENAI_KEY=[REDACTED] python app.py",
    );
    check("echo sk-abcdefghijklmnopqrst1234", "echo [REDACTED]");
    check("echo sk-short", "echo sk-short");
    check(
        "echo task-abcdefghijklmnopqrstuvwxyz",
        "echo task-abcdefghijklmnopqrstuvwxyz",
    );
    check(
        &format!("curl -H 'x-token-header: {RAMPART}'"),
        "curl -H 'x-token-header: [REDACTED]'",
    );
    check(
        &format!("echo {}", &RAMPART[..40]),
        &format!("echo {}", &RAMPART[..40]),
    );
}

#[test]
fn key_value_secrets() {
    check(
        "curl 'https://x.example/api?token=abc123&page=2'",
        "curl 'https://x.example/api?token=[REDACTED]&page=2'",
    );
    check(
        "deploy api_key=abc apikey=def API-KEY=ghi",
        "deploy api_key=[REDACTED] apikey=[REDACTED] API-KEY=[REDACTED]",
    );
    check("DB_PASSWORD=hunter2 ./run", "DB_PASSWORD=[REDACTED] ./run");
    check(
        "run password=\"two words\" x",
        "run password=\"[REDACTED]\" x",
    );
    check("run client_secret=xyz", "run client_secret=[REDACTED]");
    check("GITHUB_TOKEN=$TOKEN ./ci", "GITHUB_TOKEN=$TOKEN ./ci");
    check("run password= x", "run password= x");
    check("MYSQL_PWD=hunter2 mysql", "MYSQL_PWD=[REDACTED] mysql");
    // Look-alikes that are not secrets.
    check(
        "PWD=/home/u max_tokens=100 dd if=/dev/zero",
        "PWD=/home/u max_tokens=100 dd if=/dev/zero",
    );
}

#[test]
fn ordinary_commands_are_borrowed_untouched() {
    for command in [
        "git status",
        "rm -rf /tmp/x",
        "ls -la ~/.ssh",
        "",
        "echo ünïcödé ✓",
    ] {
        assert!(
            matches!(redact(command), Cow::Borrowed(c) if c == command),
            "{command}"
        );
    }
}

#[test]
fn several_secrets_in_one_line() {
    check(
        &format!("A={GHP} B=AKIAIOSFODNN7EXAMPLE curl -H 'Authorization: Bearer t' --password=p"),
        "A=[REDACTED] B=[REDACTED] curl -H 'Authorization: Bearer [REDACTED]' --password=[REDACTED]",
    );
}

#[test]
fn argv_elements_use_their_neighbours() {
    let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        redact_argv(&argv(&["mysql", "-uroot", "-psecret", "db"])),
        argv(&["mysql", "-uroot", "-p[REDACTED]", "db"])
    );
    assert_eq!(
        redact_argv(&argv(&["/usr/bin/mkdir", "-pv", "dir"])),
        argv(&["/usr/bin/mkdir", "-pv", "dir"])
    );
    assert_eq!(
        redact_argv(&argv(&["tool", "--password", "two words", "--token=abc"])),
        argv(&["tool", "--password", "[REDACTED]", "--token=[REDACTED]"])
    );
    assert_eq!(
        redact_argv(&argv(&[
            "curl",
            "-H",
            "Authorization: Bearer abc",
            "https://x"
        ])),
        argv(&[
            "curl",
            "-H",
            "Authorization: Bearer [REDACTED]",
            "https://x"
        ])
    );
    assert_eq!(
        redact_argv(&argv(&["sh", "-c", "mysql -psecret db"])),
        argv(&["sh", "-c", "mysql -p[REDACTED] db"])
    );
}

#[test]
fn non_ascii_around_secrets_survives() {
    check("échö --password=ñ∂ß ✓", "échö --password=[REDACTED] ✓");
    check("x=ü token=ü", "x=ü token=[REDACTED]");
}

#[test]
fn url_passwords_and_curl_user() {
    check(
        "git clone https://alice:Hunter2@github.com/x/y",
        "git clone https://alice:[REDACTED]@github.com/x/y",
    );
    check(
        "psql postgres://app:s3cr%40t@db:5432/x?sslmode=require",
        "psql postgres://app:[REDACTED]@db:5432/x?sslmode=require",
    );
    check(
        "redis-cli -u redis://:pw@host",
        "redis-cli -u redis://:[REDACTED]@host",
    );
    // A user without a password, a port, an `@` in the path: nothing to hide.
    check(
        "git clone ssh://git@github.com/x",
        "git clone ssh://git@github.com/x",
    );
    check("curl http://host:8080/a@b", "curl http://host:8080/a@b");
    check(
        "git clone https://u:$PASS@host/x",
        "git clone https://u:$PASS@host/x",
    );
    check(
        "curl -u admin:Pw1 http://x",
        "curl -u admin:[REDACTED] http://x",
    );
    check(
        "curl --user 'admin:two words' x",
        "curl --user 'admin:[REDACTED]' x",
    );
    check("curl --user=admin:Pw1 x", "curl --user=admin:[REDACTED] x");
    check("curl -u admin http://x", "curl -u admin http://x");
    // `-u` of other programs is no credential.
    check("sort -u a:b", "sort -u a:b");
    assert_eq!(
        redact_argv(&["curl".into(), "-u".into(), "admin:Pw1".into()]),
        ["curl", "-u", "admin:[REDACTED]"]
    );
}
