//! Shell-command normalisation through the public API: a table of commands and the
//! pieces they must yield, and property tests that adversarial input neither panics
//! nor costs more than linear time.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_policy::shell::{Piece, normalize};

/// Marks a privileged piece (seen through sudo/doas) in the expected lists.
const PRIV: &str = "[P] ";

fn render(pieces: &[Piece]) -> Vec<String> {
    pieces
        .iter()
        .map(|p| {
            if p.privileged {
                format!("{PRIV}{}", p.text)
            } else {
                p.text.clone()
            }
        })
        .collect()
}

#[track_caller]
fn check(input: &str, expected: &[&str]) {
    assert_eq!(render(&normalize(input)), expected, "input: {input:?}");
}

const TABLE: &[(&str, &[&str])] = &[
    // Words, quotes, escapes, basenames.
    ("", &[]),
    ("   \t ", &[]),
    ("ls", &["ls"]),
    ("  ls   -la  ", &["ls -la"]),
    ("/bin/rm -rf /", &["rm -rf /"]),
    ("./script.sh --x", &["script.sh --x"]),
    ("/usr/local/bin/ x", &["/usr/local/bin/ x"]),
    ("\"/bin/rm\" x", &["rm x"]),
    ("\"$HOME\"/bin/rm x", &["rm x"]),
    ("${HOME}/bin/rm x", &["rm x"]),
    ("grep \"rm -rf\" f", &["grep rm -rf f"]),
    ("echo 'a  b'", &["echo a  b"]),
    ("echo \"a\\\"b\"", &["echo a\"b"]),
    ("echo \"a\\\\b\"", &["echo a\\b"]),
    ("echo \"\\$HOME \\`x\\`\"", &["echo $HOME `x`"]),
    ("echo \"a\\nb\"", &["echo a\\nb"]),
    ("echo 'a\\\"b'", &["echo a\\\"b"]),
    ("echo a\\ b", &["echo a b"]),
    ("\\rm -rf /", &["rm -rf /"]),
    ("r\"m\" -rf /", &["rm -rf /"]),
    ("$'rm' -rf /", &["rm -rf /"]),
    ("echo $'a\\tb'", &["echo a\tb"]),
    ("echo $'\\x41\\101\\u00e9\\e'", &["echo AAé\u{1b}"]),
    ("echo $'it\\'s' $'\\q'", &["echo it's \\q"]),
    ("echo $\"hi there\"", &["echo hi there"]),
    ("git commit -m \"rm -rf /\"", &["git commit -m rm -rf /"]),
    ("echo $ a$", &["echo $ a$"]),
    ("echo $# a#b", &["echo $# a#b"]),
    // Separators.
    ("a && b", &["a", "b"]),
    ("a || b", &["a", "b"]),
    ("a; b", &["a", "b"]),
    ("a | b", &["a", "b"]),
    ("a & b", &["a", "b"]),
    ("a\nb", &["a", "b"]),
    ("a|&b", &["a", "b"]),
    ("a;b;c", &["a", "b", "c"]),
    ("a && ", &["a"]),
    (";;", &[]),
    ("&& a", &["a"]),
    ("; ; ;\n\n", &[]),
    ("git status && rm -rf x", &["git status", "rm -rf x"]),
    ("curl x | sh", &["curl x", "sh"]),
    (
        "echo aGk= | base64 -d | sh",
        &["echo aGk=", "base64 -d", "sh"],
    ),
    ("a \\\n && b", &["a", "b"]),
    ("ls \\\n  -la", &["ls -la"]),
    ("a\\\nb", &["ab"]),
    // Redirections are words, not separators, and move to the end.
    ("ls >out 2>&1", &["ls > out 2>&1"]),
    ("ls 2>/dev/null", &["ls 2> /dev/null"]),
    ("ls &>out", &["ls &> out"]),
    ("ls &>>out", &["ls &>> out"]),
    ("ls >&out", &["ls >& out"]),
    ("ls >&2 2>&-", &["ls >&2 2>&-"]),
    ("ls 2>& 1", &["ls 2>&1"]),
    ("ls >| out >>log", &["ls >| out >> log"]),
    ("cat <in <>rw 0<&3", &["cat < in <> rw 0<&3"]),
    ("cat <<<\"hi there\"", &["cat <<< hi there"]),
    (">out rm x", &["rm x > out"]),
    ("echo a >f b", &["echo a b > f"]),
    ("echo 2 >x", &["echo 2 > x"]),
    ("echo a2>x", &["echo a2 > x"]),
    ("echo \">\" '2>&1'", &["echo > 2>&1"]),
    ("> file", &["> file"]),
    ("ls >", &["ls >"]),
    ("cmd 2>&1 | tee log", &["cmd 2>&1", "tee log"]),
    ("cat < <(ls)", &["cat < <(ls)", "ls"]),
    ("ls>$(rm x)", &["ls > $(rm x)", "rm x"]),
    // Assignments.
    ("A=1 B=2 cmd x", &["cmd x"]),
    ("A=\"x y\" cmd", &["cmd"]),
    ("A=1", &[]),
    ("A=1 > f", &["> f"]),
    ("\"A=1\" cmd", &["A=1 cmd"]),
    ("A\\=1 cmd", &["A=1 cmd"]),
    ("1A=2 cmd", &["1A=2 cmd"]),
    ("PATH+=:/x cmd", &["cmd"]),
    ("x=$(rm -rf /)", &["rm -rf /"]),
    ("arr=(a b c) cmd", &["cmd"]),
    ("arr=(a $(rm x) c)", &["rm x"]),
    // Wrappers, each with its own options.
    ("env rm -rf /", &["rm -rf /"]),
    ("env", &["env"]),
    ("env -i", &["env -i"]),
    ("env A=1 B=2", &["env A=1 B=2"]),
    ("env -i A=1 B=2 rm x", &["rm x"]),
    ("env \"A=1\" rm x", &["rm x"]),
    ("env -u HOME rm x", &["rm x"]),
    ("env --unset=HOME -0 rm x", &["rm x"]),
    ("env --unset HOME rm x", &["rm x"]),
    ("env -C /tmp rm x", &["rm x"]),
    ("env -C/tmp --chdir=/ --chdir /tmp rm x", &["rm x"]),
    ("env -- rm x", &["rm x"]),
    ("env - PATH=/bin rm x", &["rm x"]),
    ("env -S 'rm -rf' /", &["rm -rf /"]),
    ("env --split-string='nice rm' x", &["rm x"]),
    ("env --split-string 'rm -v' x", &["rm -v x"]),
    ("env -iS'rm -v' a", &["rm -v a"]),
    ("env -S '-i A=1 rm' x", &["rm x"]),
    ("env -S ''", &["env"]),
    ("/usr/bin/env bash -c 'rm -rf /'", &["rm -rf /"]),
    ("nohup rm x &", &["rm x"]),
    ("nohup", &["nohup"]),
    ("nice -n 5 rm x", &["rm x"]),
    ("nice -5 rm x", &["rm x"]),
    ("nice -n -5 rm x", &["rm x"]),
    ("nice -n5 --adjustment=3 --adjustment 4 rm x", &["rm x"]),
    ("nice", &["nice"]),
    ("nice -n 5", &["nice -n 5"]),
    ("nice A=1 cmd", &["A=1 cmd"]),
    ("timeout 5 rm x", &["rm x"]),
    ("timeout -k 1 -s KILL --preserve-status 10s rm x", &["rm x"]),
    (
        "timeout --signal=TERM --foreground -v --kill-after 2 3 rm x",
        &["rm x"],
    ),
    ("timeout -vk1 3 rm x", &["rm x"]),
    ("timeout 5", &["timeout 5"]),
    ("setsid -f rm x", &["rm x"]),
    ("setsid -w -c rm x", &["rm x"]),
    ("stdbuf -oL -i 0 -e0 rm x", &["rm x"]),
    ("stdbuf --output=L --error 0 rm x", &["rm x"]),
    ("command -p rm x", &["rm x"]),
    ("command rm x", &["rm x"]),
    ("command -v rm", &["command -v rm"]),
    ("command -V rm", &["command -V rm"]),
    ("command", &["command"]),
    ("exec -a name rm x", &["rm x"]),
    ("exec -cl rm x", &["rm x"]),
    ("exec 3>&1", &["exec 3>&1"]),
    ("exec >log 2>&1", &["exec > log 2>&1"]),
    ("time -p rm x", &["rm x"]),
    ("time rm x", &["rm x"]),
    ("/usr/bin/time -f %e -o t.txt rm x", &["rm x"]),
    ("ionice -c 3 -n 7 rm x", &["rm x"]),
    ("ionice -c3 rm x", &["rm x"]),
    ("ionice -p 123", &["ionice -p 123"]),
    ("chrt -f 99 rm x", &["rm x"]),
    ("chrt -p 10 123", &["chrt -p 10 123"]),
    ("chrt -P 100 -f 9 rm x", &["rm x"]),
    ("ionice -u 1000 -c 3", &["ionice -u 1000 -c 3"]),
    ("xargs -0 -n 1 rm -f", &["rm -f"]),
    (
        "find . -name '*.o' | xargs -I {} rm {}",
        &["find . -name *.o", "rm {}"],
    ),
    ("xargs", &["xargs"]),
    ("busybox rm x", &["rm x"]),
    ("builtin echo hi", &["echo hi"]),
    ("nice env A=1 timeout 5 nohup /bin/rm -rf /", &["rm -rf /"]),
    (
        "env nice -n 1 env -i setsid stdbuf -oL rm -rf /",
        &["rm -rf /"],
    ),
    // Shell bodies and eval are replaced by their pieces.
    ("sh -c 'rm -rf /'", &["rm -rf /"]),
    ("bash -c \"cd x && rm -rf y\"", &["cd x", "rm -rf y"]),
    ("bash -lc 'rm x'", &["rm x"]),
    ("bash -xc 'rm x'", &["rm x"]),
    ("sh -e -c 'rm x'", &["rm x"]),
    ("bash --login -c 'rm x'", &["rm x"]),
    (
        "bash --norc --rcfile f -O extglob +o history -c 'rm x'",
        &["rm x"],
    ),
    (
        "zsh -c 'rm x'; dash -c 'ls'; ksh -c 'id'",
        &["rm x", "ls", "id"],
    ),
    ("bash -o pipefail -c 'a | b'", &["a", "b"]),
    ("/bin/bash -c 'rm x' name arg", &["rm x"]),
    ("bash -c -- 'rm x'", &["rm x"]),
    ("bash script.sh", &["bash script.sh"]),
    ("bash", &["bash"]),
    ("bash -c", &["bash -c"]),
    ("sh -c ''", &[]),
    ("bash -c \"bash -c 'rm x'\"", &["rm x"]),
    ("sh -c 'ls' > out", &["ls"]),
    ("eval 'rm -rf /'", &["rm -rf /"]),
    ("eval rm '-rf /'", &["rm -rf /"]),
    ("eval \"a; b\"", &["a", "b"]),
    ("eval", &["eval"]),
    ("eval eval eval rm x", &["rm x"]),
    ("eval \"sh -c 'rm x'\"", &["rm x"]),
    // Substitutions add their pieces after the command that contains them.
    ("echo $(rm -rf /)", &["echo $(rm -rf /)", "rm -rf /"]),
    ("echo \"$(rm -rf /)\"", &["echo $(rm -rf /)", "rm -rf /"]),
    ("echo '$(rm -rf /)'", &["echo $(rm -rf /)"]),
    ("echo `rm -rf /`", &["echo `rm -rf /`", "rm -rf /"]),
    ("echo \"`rm -rf /`\"", &["echo `rm -rf /`", "rm -rf /"]),
    ("echo '`rm -rf /`'", &["echo `rm -rf /`"]),
    ("echo $(a $(b))", &["echo $(a $(b))", "a $(b)", "b"]),
    ("echo $(a) $(b)", &["echo $(a) $(b)", "a", "b"]),
    (
        "echo \"$(a \"$(b)\")\"",
        &["echo $(a \"$(b)\")", "a $(b)", "b"],
    ),
    ("echo `a \\`b\\``", &["echo `a \\`b\\``", "a `b`", "b"]),
    ("echo $(a; b | c)", &["echo $(a; b | c)", "a", "b", "c"]),
    ("bash <(curl -s x)", &["bash <(curl -s x)", "curl -s x"]),
    (
        "diff <(ls a) <(ls b)",
        &["diff <(ls a) <(ls b)", "ls a", "ls b"],
    ),
    ("tee >(rm x)", &["tee >(rm x)", "rm x"]),
    ("echo ${x:-$(rm x)}", &["echo ${x:-$(rm x)}", "rm x"]),
    ("echo \"${x:-`rm x`}\"", &["echo ${x:-`rm x`}", "rm x"]),
    ("echo $((1 + $(rm x)))", &["echo $((1 + $(rm x)))", "rm x"]),
    ("echo $((2*(3+4)))", &["echo $((2*(3+4)))"]),
    ("(( i++ ))", &[]),
    // The expanded reading (crate::expand) adds its pieces: `i=0` is an assignment.
    ("for ((i=0; i<3; i++)); do rm $i; done", &["rm $i", "rm 0"]),
    ("$(which rm) -rf /", &["$(which rm) -rf /", "which rm"]),
    ("$(cat /a/b) x", &["$(cat /a/b) x", "cat /a/b"]),
    ("echo $(rm -rf /", &["echo $(rm -rf /", "rm -rf /"]),
    ("echo `rm -rf /", &["echo `rm -rf /", "rm -rf /"]),
    (
        "echo $(case x in a) rm y;; esac)",
        &["echo $(case x in a) rm y;; esac)", "rm y"],
    ),
    ("echo $()", &["echo $()"]),
    // sudo/doas: own piece, plus the inner command's pieces marked privileged.
    ("sudo git push", &["sudo git push", "[P] git push"]),
    (
        "sudo sh -c 'rm -rf /'",
        &["sudo sh -c rm -rf /", "[P] rm -rf /"],
    ),
    (
        "sudo -u bob -E --preserve-env=X -- rm x",
        &["sudo -u bob -E --preserve-env=X -- rm x", "[P] rm x"],
    ),
    (
        "sudo --user bob -ubob rm x",
        &["sudo --user bob -ubob rm x", "[P] rm x"],
    ),
    ("doas -u x rm y", &["doas -u x rm y", "[P] rm y"]),
    // The dynamic loader: own piece, plus the program it runs (not privileged).
    (
        "/lib64/ld-linux-x86-64.so.2 /usr/bin/touch F",
        &["ld-linux-x86-64.so.2 /usr/bin/touch F", "touch F"],
    ),
    (
        "/lib64/ld-linux-x86-64.so.2 --argv0 ls --preload /tmp/l.so --library-path /x --audit a.so --inhibit-cache --inhibit-rpath '' /bin/rm -rf /",
        &[
            "ld-linux-x86-64.so.2 --argv0 ls --preload /tmp/l.so --library-path /x --audit a.so --inhibit-cache --inhibit-rpath  /bin/rm -rf /",
            "rm -rf /",
        ],
    ),
    (
        "ld.so --library-path=/x -- env X=1 rm f",
        &["ld.so --library-path=/x -- env X=1 rm f", "rm f"],
    ),
    (
        "/lib/ld-musl-x86_64.so.1 /bin/rm f",
        &["ld-musl-x86_64.so.1 /bin/rm f", "rm f"],
    ),
    (
        "/lib/ld-linux-aarch64.so.1 rm f",
        &["ld-linux-aarch64.so.1 rm f", "rm f"],
    ),
    ("/lib64/ld64.so.2 rm f", &["ld64.so.2 rm f", "rm f"]),
    (
        "/lib64/ld-linux-x86-64.so.2 --list /bin/ls",
        &["ld-linux-x86-64.so.2 --list /bin/ls"],
    ),
    (
        "/lib64/ld-linux-x86-64.so.2 --verify /bin/ls",
        &["ld-linux-x86-64.so.2 --verify /bin/ls"],
    ),
    ("/lib64/ld-linux-x86-64.so.2", &["ld-linux-x86-64.so.2"]),
    ("ld -o libx.so a.o", &["ld -o libx.so a.o"]),
    (
        "ld.lld -shared -o libx.so a.o",
        &["ld.lld -shared -o libx.so a.o"],
    ),
    ("ldd /bin/ls", &["ldd /bin/ls"]),
    ("ldconfig -p", &["ldconfig -p"]),
    // Launchers (issue 14, family 3): own piece, plus what they run.
    (
        "strace -f -o /tmp/t rm x",
        &["strace -f -o /tmp/t rm x", "rm x"],
    ),
    ("strace -p 42", &["strace -p 42"]),
    (
        "gdb -q --args /bin/rm -rf /",
        &["gdb -q --args /bin/rm -rf /", "rm -rf /"],
    ),
    (
        "valgrind --tool=memcheck rm f",
        &["valgrind --tool=memcheck rm f", "rm f"],
    ),
    ("taskset -c 0 rm f", &["taskset -c 0 rm f", "rm f"]),
    ("taskset -p 3 42", &["taskset -p 3 42"]),
    ("flock /tmp/l rm f", &["flock /tmp/l rm f", "rm f"]),
    (
        "flock -w 5 /tmp/l -c 'rm f; id'",
        &["flock -w 5 /tmp/l -c rm f; id", "rm f", "id"],
    ),
    ("unshare -r -n rm f", &["unshare -r -n rm f", "rm f"]),
    ("chroot / rm f", &["chroot / rm f", "rm f"]),
    (
        "script -qc 'rm f' /dev/null",
        &["script -qc rm f /dev/null", "rm f"],
    ),
    (
        "script -q -c 'rm f' log",
        &["script -q -c rm f log", "rm f"],
    ),
    ("watch -n 1 'rm f'", &["watch -n 1 rm f", "rm f"]),
    ("xvfb-run -a rm f", &["xvfb-run -a rm f", "rm f"]),
    ("parallel rm ::: a b", &["parallel rm ::: a b", "rm a b"]),
    (
        "parallel -j4 'rm -rf {}' ::: a",
        &["parallel -j4 rm -rf {} ::: a", "rm -rf {} a"],
    ),
    (
        "find . -exec rm -rf {} \\;",
        &["find . -exec rm -rf {} ;", "rm -rf {}"],
    ),
    (
        "find / -name x -execdir shred {} + -ok rm {} ;",
        &[
            "find / -name x -execdir shred {} + -ok rm {}",
            "shred {}",
            "rm {}",
        ],
    ),
    (
        "git -c 'alias.x=!rm -rf ~' x",
        &["git -c alias.x=!rm -rf ~ x", "rm -rf ~"],
    ),
    (
        "git -c core.editor=vim commit",
        &["git -c core.editor=vim commit"],
    ),
    (
        "awk 'BEGIN{system(\"rm -rf ~\")}'",
        &["awk BEGIN{system(\"rm -rf ~\")}", "rm -rf ~"],
    ),
    ("awk '{print $1}' f", &["awk {print $1} f"]),
    (
        "tar cf x.tar --checkpoint=1 --checkpoint-action=exec='rm f' .",
        &[
            "tar cf x.tar --checkpoint=1 --checkpoint-action=exec=rm f .",
            "rm f",
        ],
    ),
    ("tar -I 'sh -c id' -xf a", &["tar -I sh -c id -xf a", "id"]),
    (
        "ssh -p 22 host 'rm -rf ~'",
        &["ssh -p 22 host rm -rf ~", "rm -rf ~"],
    ),
    ("ssh host", &["ssh host"]),
    ("echo 'rm x' | at now", &["echo rm x", "at now"]),
    (
        "tmux send-keys -t 0 'rm -rf ~' Enter",
        &["tmux send-keys -t 0 rm -rf ~ Enter", "rm -rf ~ Enter"],
    ),
    ("tmux ls", &["tmux ls"]),
    (
        "screen -S s -X stuff 'rm f\n'",
        &["screen -S s -X stuff rm f\n", "rm f"],
    ),
    (
        "systemd-run --user -p X=1 rm f",
        &["systemd-run --user -p X=1 rm f", "rm f"],
    ),
    (
        "docker run --rm -v /:/host -e A=1 alpine rm -rf /host",
        &[
            "docker run --rm -v /:/host -e A=1 alpine rm -rf /host",
            "rm -rf /host",
        ],
    ),
    ("docker ps -a", &["docker ps -a"]),
    (
        "podman exec -it c sh -c 'rm f'",
        &["podman exec -it c sh -c rm f", "rm f"],
    ),
    (
        "kubectl exec -it pod -- rm f",
        &["kubectl exec -it pod -- rm f", "rm f"],
    ),
    ("kubectl get pods", &["kubectl get pods"]),
    ("su - root -c 'rm f'", &["su - root -c rm f", "rm f"]),
    // Interpreter one-liners (family 5): what the code runs, deletes, chmods.
    (
        "python3 -c 'import os; os.system(\"rm -rf ~\")'",
        &["python3 -c import os; os.system(\"rm -rf ~\")", "rm -rf ~"],
    ),
    (
        "python -c 'import shutil,os; shutil.rmtree(os.path.expanduser(\"~\"))'",
        &[
            "python -c import shutil,os; shutil.rmtree(os.path.expanduser(\"~\"))",
            "rm -rf ~",
        ],
    ),
    // An argv list runs no shell: its exec is checked when it happens.
    (
        "python3 -c \"import subprocess; subprocess.run(['rm', '-rf', '/'])\"",
        &["python3 -c import subprocess; subprocess.run(['rm', '-rf', '/'])"],
    ),
    (
        "python3 -c \"import subprocess; subprocess.run('rm -rf /', shell=True)\"",
        &[
            "python3 -c import subprocess; subprocess.run('rm -rf /', shell=True)",
            "rm -rf /",
        ],
    ),
    (
        "node -e 'require(\"fs\").rmSync(process.env.HOME, {recursive: true})'",
        &[
            "node -e require(\"fs\").rmSync(process.env.HOME, {recursive: true})",
            "rm -rf ~",
        ],
    ),
    (
        "node -e 'require(\"child_process\").execSync(\"touch f\")'",
        &[
            "node -e require(\"child_process\").execSync(\"touch f\")",
            "touch f",
        ],
    ),
    (
        "perl -e 'system \"rm -rf /\"'",
        &["perl -e system \"rm -rf /\"", "rm -rf /"],
    ),
    ("perl -ne 'print `id`' f", &["perl -ne print `id` f", "id"]),
    (
        "ruby -e 'FileUtils.rm_rf(Dir.home)'",
        &["ruby -e FileUtils.rm_rf(Dir.home)", "rm -rf ~"],
    ),
    (
        "php -r 'shell_exec(\"rm x\");'",
        &["php -r shell_exec(\"rm x\");", "rm x"],
    ),
    (
        "python3 -c 'import os; os.chmod(\"/etc/passwd\", 0o777)'",
        &[
            "python3 -c import os; os.chmod(\"/etc/passwd\", 0o777)",
            "chmod 0 /etc/passwd",
        ],
    ),
    ("python3 -c 'print(1+1)'", &["python3 -c print(1+1)"]),
    ("python3 -m http.server", &["python3 -m http.server"]),
    // A here-string fed to a shell is its script; `$IFS`, earlier assignments and brace
    // lists add the expanded reading (crate::expand).
    ("bash <<< 'rm -rf ~'", &["bash <<< rm -rf ~", "rm -rf ~"]),
    ("cat <<< 'rm -rf ~'", &["cat <<< rm -rf ~"]),
    // A here-document fed to a shell is its script; to an interpreter, its code.
    ("bash <<'EOF'\nrm -rf ~\nEOF", &["bash << EOF", "rm -rf ~"]),
    (
        "sh <<EOF\ncd /\nrm -rf usr\nEOF\nls",
        &["sh << EOF", "cd /", "rm -rf usr", "ls"],
    ),
    (
        "python3 - <<'PY'\nimport shutil\nshutil.rmtree('/home/u')\nPY",
        &["python3 - << PY", "rm -rf /home/u"],
    ),
    ("cat <<EOF\nrm -rf ~\nEOF", &["cat << EOF"]),
    ("rm${IFS}-rf${IFS}/", &["rm${IFS}-rf${IFS}/", "rm -rf /"]),
    ("c=rm; $c -rf ~", &["$c -rf ~", "rm -rf ~"]),
    (
        "T=/; cd $T && rm -rf *",
        &["cd $T", "rm -rf *", "cd /", "rm -rf *"],
    ),
    ("{rm,-rf,/}", &["}", "rm -rf /"]),
    ("doas -C /etc/doas.conf rm", &["doas -C /etc/doas.conf rm"]),
    ("sudo -i", &["sudo -i"]),
    ("sudo -s", &["sudo -s"]),
    ("sudo -u", &["sudo -u"]),
    ("sudo -e /etc/hosts", &["sudo -e /etc/hosts"]),
    ("sudo -l", &["sudo -l"]),
    ("/usr/bin/sudo /bin/rm x", &["sudo /bin/rm x", "[P] rm x"]),
    ("sudo A=1 nice rm x", &["sudo A=1 nice rm x", "[P] rm x"]),
    (
        "sudo rm $(id -u)",
        &["sudo rm $(id -u)", "[P] rm $(id -u)", "id -u"],
    ),
    (
        "sudo bash -c 'a && echo $(b)'",
        &[
            "sudo bash -c a && echo $(b)",
            "[P] a",
            "[P] echo $(b)",
            "[P] b",
        ],
    ),
    ("nice sudo rm x", &["sudo rm x", "[P] rm x"]),
    (
        "sudo sudo rm x",
        &["sudo sudo rm x", "[P] sudo rm x", "[P] rm x"],
    ),
    ("sudo eval 'a; b'", &["sudo eval a; b", "[P] a", "[P] b"]),
    (
        "echo x | sudo tee /etc/f > /dev/null",
        &[
            "echo x",
            "sudo tee /etc/f > /dev/null",
            "[P] tee /etc/f > /dev/null",
        ],
    ),
    // Subshells, groups, reserved words, functions.
    ("( cd x && rm -rf y )", &["cd x", "rm -rf y"]),
    ("(a) > f && b", &["a", "b"]),
    ("{ a; b; }", &["a", "b"]),
    ("{ a; } > f", &["a"]),
    ("if true; then rm -rf /; fi", &["true", "rm -rf /"]),
    (
        "if ! a; then b; elif c; then d; else e; fi",
        &["a", "b", "c", "d", "e"],
    ),
    (
        "while read f; do rm \"$f\"; done < list",
        &["read f", "rm $f"],
    ),
    ("until false; do :; done", &["false", ":"]),
    ("for f in *; do rm $f; done", &["rm $f"]),
    ("for f in $(ls); do rm $f; done", &["ls", "rm $f"]),
    ("case $x in a) rm y;; b|c) ls;; esac", &["rm y", "ls"]),
    (
        "case $x in\n  (a) rm y ;;\n  *) ls ;;\nesac; id",
        &["rm y", "ls", "id"],
    ),
    ("! rm x", &["rm x"]),
    ("f() { rm -rf /; }", &["rm -rf /"]),
    ("function f { rm x; }", &["rm x"]),
    ("function f() { rm x; }; f", &["rm x", "f"]),
    (":(){ :|:& };:", &[":", ":", ":"]),
    ("\"if\" x", &["if x"]),
    ("echo if then fi", &["echo if then fi"]),
    ("echo {a,b} { }", &["echo {a,b} { }", "echo a b { }"]),
    // Comments.
    ("ls # rm -rf /", &["ls"]),
    ("# just a comment", &[]),
    ("ls\n# rm\nrm x", &["ls", "rm x"]),
    ("ls;# rm x", &["ls"]),
    // Here-documents: the body is data, but unquoted bodies' substitutions run.
    (
        "cat <<EOF\nrm -rf /\nEOF\necho done",
        &["cat << EOF", "echo done"],
    ),
    ("cat <<'EOF'\n$(rm x)\nEOF", &["cat << EOF"]),
    ("cat <<EOF\nhi $(rm x)\nEOF", &["cat << EOF", "rm x"]),
    ("cat <<-EOF\n\trm\n\tEOF\nls", &["cat <<- EOF", "ls"]),
    ("cat <<EOF > f\nbody", &["cat << EOF > f"]),
    (
        "cat <<A <<B; ls\na\nA\nb\nB\nid",
        &["cat << A << B", "ls", "id"],
    ),
    // Nasty input.
    ("echo \"abc", &["echo abc"]),
    ("echo 'abc", &["echo abc"]),
    ("echo $'abc", &["echo abc"]),
    ("echo abc\\", &["echo abc\\"]),
    ("\\", &["\\"]),
    ("rm '' x", &["rm  x"]),
    ("''", &[]),
    ("'' ''", &[]),
    ("'' rm", &[" rm"]),
    ("echo \0x\0", &["echo \0x\0"]),
    (
        "echo \u{1b}[31mred\u{1b}[0m",
        &["echo \u{1b}[31mred\u{1b}[0m"],
    ),
    ("rm\u{1b}[8m -rf /", &["rm\u{1b}[8m -rf /"]),
    ("échö 'ü' \"ß\"", &["échö ü ß"]),
    ("echo )", &["echo"]),
    ("echo ( rm x", &["echo", "rm x"]),
    ("$(((((", &["$((((("]),
];

#[test]
fn table() {
    assert!(TABLE.len() >= 100, "only {} cases", TABLE.len());
    let mut failures = Vec::new();
    for (input, expected) in TABLE {
        let got = render(&normalize(input));
        if got != *expected {
            failures.push(format!(
                "{input:?}\n   expected {expected:?}\n   got      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

#[test]
fn thirty_two_nested_env() {
    let command = format!("{}rm -rf /", "env ".repeat(32));
    check(&command, &["rm -rf /"]);
    let command = format!("{}rm -rf /", "env -i A=1 nice -n 3 ".repeat(32));
    check(&command, &["rm -rf /"]);
}

#[test]
fn many_nested_wrappers_are_iterated() {
    let command = format!("{}rm -rf /", "env nohup nice timeout 5 ".repeat(5_000));
    check(&command, &["rm -rf /"]);
}

/// Adversarial command generators, each scaled by `n` (roughly the input size in units).
fn adversarial(n: usize) -> Vec<(&'static str, String)> {
    let nest =
        |open: &str, mid: &str, close: &str| format!("{}{mid}{}", open.repeat(n), close.repeat(n));
    vec![
        ("long words", "ab ".repeat(n)),
        ("many separators", "a && b | c & d; ".repeat(n / 4)),
        ("many stars", format!("rm -rf {}", "*".repeat(n))),
        (
            "many stars and slashes",
            format!("rm -rf /{}", "*/".repeat(n)),
        ),
        ("nested $(", nest("$(", "rm -rf /", ")")),
        ("unclosed $(", "$(".repeat(n)),
        ("nested \"$(", nest("\"$(", "rm -rf /", ")\"")),
        ("nested sh -c \"$(", nest("sh -c \"$(", "rm -rf /", ")\"")),
        ("nested subshells", nest("(", "rm -rf /", ")")),
        ("nested ${x:-", nest("${x:-", "$(rm)", "}")),
        ("nested $((", nest("$((", "1", "))")),
        ("nested arrays", nest("a=(", "b", ")")),
        ("nested <(", nest("<(", "rm", ")")),
        ("backtick pairs", "``".repeat(n)),
        ("backtick chain", "`a \\`".repeat(n)),
        ("eval chain", format!("{}rm -rf /", "eval ".repeat(n))),
        (
            "eval chain with substitution",
            format!("{}$(rm -rf /)", "eval ".repeat(n)),
        ),
        ("sudo chain", format!("{}rm -rf /", "sudo ".repeat(n))),
        (
            "sudo sh -c chain",
            format!("{}rm -rf /", "sudo sh -c ".repeat(n)),
        ),
        ("env -S chain", format!("{}rm -rf /", "env -S ".repeat(n))),
        (
            "unbalanced sh -c quotes",
            format!("{}rm", "sh -c \"".repeat(n)),
        ),
        ("eval of substitutions", nest("eval \"$(", "rm", ")\"")),
        ("quotes", "'\"".repeat(n)),
        ("backslashes", "\\".repeat(n)),
        ("ansi-c", "$'\\x".repeat(n)),
        (
            "heredocs",
            format!("{}\n{}", "cat <<a ".repeat(n / 8), "x\n".repeat(n)),
        ),
        (
            "expanding heredoc",
            format!("cat <<a\n{}a\n", "$(rm) `id`\n".repeat(n / 8)),
        ),
        ("case", "case x in ".repeat(n)),
        (
            "case patterns",
            format!("case x in {}) rm;; esac", "a|".repeat(n)),
        ),
        ("function definitions", "f() ".repeat(n)),
        ("comments", "# ;\n".repeat(n)),
        ("redirections", "2>&1 >x <y &>z ".repeat(n / 4)),
        (
            "wrappers",
            format!("{}rm", "env -i nice -n 1 timeout 5 ".repeat(n / 8)),
        ),
    ]
}

/// Best of three runs, to damp scheduler noise.
fn timed(input: &str) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let pieces = normalize(input);
        best = best.min(start.elapsed());
        bytes = pieces.iter().map(|p| p.text.len()).sum();
    }
    (best, bytes)
}

#[test]
fn adversarial_input_costs_linear_time_and_output() {
    const N: usize = 16 * 1024;
    let small = adversarial(N);
    let big = adversarial(4 * N);
    for ((name, small), (_, big)) in small.iter().zip(&big) {
        let (t_small, out_small) = timed(small);
        let (t_big, out_big) = timed(big);
        // Output is bounded by a multiple of the input: depth 64, budget 8x.
        assert!(
            out_big <= 80 * big.len() + (1 << 20),
            "{name}: {out_big} output bytes for {} input bytes",
            big.len()
        );
        // Linear growth is 4x, quadratic 16x; allow noise on a loaded machine.
        assert!(
            t_big <= t_small * 10 + Duration::from_millis(30),
            "{name}: {t_small:?} for {} bytes but {t_big:?} for {} bytes (out {out_small} -> {out_big})",
            small.len(),
            big.len()
        );
        assert!(t_big < Duration::from_secs(2), "{name}: {t_big:?}");
    }
}

#[test]
fn deep_nesting_is_cut_at_the_depth_limit() {
    use rampart_policy::shell::{MAX_DEPTH, normalize_checked};
    // A short command is followed to the depth limit: the top-level command, one piece
    // per level, and the rest as one piece kept as written, so nothing disappears.
    let command = format!("{}rm -rf /{}", "$(".repeat(100), ")".repeat(100));
    let result = normalize_checked(&command);
    assert!(result.truncated);
    assert_eq!(result.pieces.len(), 1 + MAX_DEPTH + 1);
    let last = result.pieces.last().map(|p| p.text.as_str());
    let rest = 100 - MAX_DEPTH - 1;
    let expected = format!("{}rm -rf /{}", "$(".repeat(rest), ")".repeat(rest));
    assert_eq!(last, Some(expected.as_str()));
    // 10 000 levels: the work budget cuts earlier, but the tail is still there.
    let command = format!("{}rm -rf /{}", "$(".repeat(10_000), ")".repeat(10_000));
    let result = normalize_checked(&command);
    assert!(result.truncated);
    assert!(result.pieces.len() <= 1 + MAX_DEPTH + 1);
    assert!(
        result
            .pieces
            .last()
            .is_some_and(|p| p.text.contains("rm -rf /)"))
    );
    // 10 000 layers of `sh -c` quoting likewise.
    let command = format!(
        "{}rm -rf /{}",
        "sh -c \"$(".repeat(10_000),
        ")\"".repeat(10_000)
    );
    let result = normalize_checked(&command);
    assert!(result.truncated);
    assert!(result.pieces.iter().any(|p| p.text.contains("rm -rf /")));
    // Ordinary nesting is not truncated.
    let result = normalize_checked("sudo bash -c \"echo $(date $(id -u)) `uname`\" | eval 'a; b'");
    assert!(!result.truncated);
}

#[test]
fn hundred_kib_commands() {
    let words = "rm -rf /tmp/x ".repeat(100 * 1024 / 14);
    let pieces = normalize(&words);
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].text, words.trim_end());
    let stars = format!("echo {}", "*".repeat(100 * 1024));
    assert_eq!(render(&normalize(&stars)), [stars.as_str()]);
}

/// Words that are neither reserved nor wrappers, nor need quoting.
fn plain_word() -> impl Strategy<Value = String> {
    "q[a-z0-9_./-]{0,8}"
}

/// Fragments that exercise every corner of the scanner.
const SOUP: &[&str] = &[
    "$(",
    ")",
    "(",
    "`",
    "'",
    "\"",
    "\\",
    " ",
    ";",
    "|",
    "&",
    "<",
    ">",
    "\n",
    "${",
    "}",
    "{",
    "((",
    "$((",
    "<<",
    "<<-",
    "#",
    "$'",
    "=",
    "a",
    "rm",
    "EOF",
    "2>&1",
    "sh -c ",
    "bash -lc ",
    "sudo ",
    "eval ",
    "env -S ",
    "env ",
    "nice -n ",
    "timeout ",
    "case ",
    " in ",
    "esac",
    "if ",
    "then ",
    "fi",
    "f() ",
    "x=(",
    "<(",
    "\0",
    "\u{1b}",
    "é",
    "*",
    "-",
];

fn shell_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SOUP), 0..300).prop_map(|v| v.concat())
}

fn assert_sane(input: &str, pieces: &[Piece]) {
    for piece in pieces {
        assert!(!piece.text.is_empty(), "empty piece from {input:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        assert_sane(&input, &normalize(&input));
    }

    #[test]
    fn shell_soup_never_panics(input in shell_soup()) {
        let start = Instant::now();
        let pieces = normalize(&input);
        prop_assert!(start.elapsed() < Duration::from_secs(1));
        assert_sane(&input, &pieces);
    }

    #[test]
    fn repeated_soup_is_fast(input in shell_soup(), times in 1usize..200) {
        let input = input.repeat(times);
        let start = Instant::now();
        let pieces = normalize(&input);
        prop_assert!(start.elapsed() < Duration::from_secs(2));
        assert_sane(&input, &pieces);
    }

    #[test]
    fn plain_words_are_one_piece(words in prop::collection::vec(plain_word(), 1..12), gaps in prop::collection::vec("[ \t]{1,3}", 12)) {
        let input: String = words.iter().zip(&gaps).map(|(w, g)| format!("{w}{g}")).collect();
        let mut expected = words.clone();
        if let Some(program) = expected.first_mut() {
            *program = program.rsplit('/').find(|s| !s.is_empty()).unwrap_or(program).to_owned();
            if words[0].ends_with('/') { program.clone_from(&words[0]); }
        }
        prop_assert_eq!(render(&normalize(&input)), [expected.join(" ")]);
    }

    #[test]
    fn separators_split(
        a in prop::collection::vec("q[a-z]{0,5}", 1..4),
        b in prop::collection::vec("q[a-z]{0,5}", 1..4),
        sep in prop_oneof![Just("&&"), Just("||"), Just(";"), Just("|"), Just("&"), Just("\n"), Just("|&")],
    ) {
        let (a, b) = (a.join(" "), b.join(" "));
        prop_assert_eq!(render(&normalize(&format!("{a}{sep}{b}"))), [a, b]);
    }

    #[test]
    fn single_quotes_keep_everything(arg in "[^']{0,40}") {
        let got = render(&normalize(&format!("qcmd '{arg}'")));
        prop_assert_eq!(got, [format!("qcmd {arg}")]);
    }

    #[test]
    fn sh_c_is_its_body(body in "([a-z ;|&()$`\"<>0-9][a-z ;|&()$`\"<>0-9-]{0,40})?") {
        let direct = normalize(&body);
        prop_assert_eq!(normalize(&format!("sh -c '{body}'")), direct.clone());
        prop_assert_eq!(normalize(&format!("bash -lc '{body}'")), direct);
    }

    #[test]
    fn sudo_adds_privileged_copies(words in prop::collection::vec("q[a-z]{0,5}", 1..5)) {
        let inner = words.join(" ");
        let got = render(&normalize(&format!("sudo {inner}")));
        prop_assert_eq!(got, [format!("sudo {inner}"), format!("{PRIV}{inner}")]);
    }

    #[test]
    fn wrappers_are_transparent(
        wrappers in prop::collection::vec(prop_oneof![
            Just("env"), Just("env -i A=1"), Just("nohup"), Just("nice -n 5"), Just("timeout 9"),
            Just("setsid -f"), Just("stdbuf -oL"), Just("command"), Just("exec"), Just("time -p"),
            Just("ionice -c 3"), Just("xargs -0"), Just("env A=1 B=2"), Just("env --"),
        ], 0..40),
        words in prop::collection::vec("q[a-z]{0,5}", 1..5),
    ) {
        let inner = words.join(" ");
        let input = format!("{} {inner}", wrappers.join(" "));
        prop_assert_eq!(render(&normalize(&input)), [inner]);
    }
}
