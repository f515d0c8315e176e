//! Secrets stay secret (README "Reliability"): key and certificate material never appears in
//! any output, `--secret` and `SOCKSCRIPT_SECRET_*` values are `***` in stdout, `--trace`,
//! diagnostics and every report, and `env(name)` reads only what the command line allows.
//! Each test reads back everything the run wrote: stdout, stderr and the three report files.

use std::path::{Path, PathBuf};

use crate::harness::{temp_dir, Output, Test};

/// The base64 of a distinctive phrase, as the body of a PEM block.
const BODY: &str =
    "c29ja3NjcmlwdC1zZWNyZXQtdGVzdC1rZXktbWF0ZXJpYWwtZG8tbm90LWVjaG8tMDEyMzQ1Njc4OQ==";

/// A PEM block as a CI secret often holds it: `\n` written as the two characters `\` `n`.
fn literal_newlines(label: &str) -> String {
    format!("-----BEGIN {label}-----\\n{BODY}\\n-----END {label}-----\\n")
}

/// The reports a test-mode run writes, in a fresh directory.
struct Reports {
    dir: PathBuf,
}

impl Reports {
    fn new(tag: &str) -> Reports {
        Reports { dir: temp_dir(tag) }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// `--report-junit`, `--report-tap`, `--report-json`, `--report-markdown` and
    /// `--report-html` into this directory.
    fn args(&self) -> Vec<String> {
        ["junit", "tap", "json", "markdown", "html"]
            .iter()
            .flat_map(|k| [format!("--report-{k}"), self.path(&format!("r.{k}"))])
            .collect()
    }

    /// Every text the run wrote, named: stdout, stderr and each report.
    fn everything(&self, out: &Output) -> Vec<(String, String)> {
        let mut texts = vec![
            ("stdout".to_owned(), out.stdout.clone()),
            ("stderr".to_owned(), out.stderr.clone()),
        ];
        for k in ["junit", "tap", "json", "markdown", "html"] {
            let path = self.path(&format!("r.{k}"));
            let text = std::fs::read_to_string(Path::new(&path))
                .unwrap_or_else(|e| panic!("the {k} report `{path}`: {e}"));
            texts.push((k.to_owned(), text));
        }
        texts
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn nowhere(texts: &[(String, String)], needle: &str) {
    for (name, text) in texts {
        assert!(!text.contains(needle), "{name} shows {needle:?}:\n{text}");
    }
}

#[track_caller]
fn in_each(texts: &[(String, String)], names: &[&str], needle: &str) {
    for (name, text) in texts.iter().filter(|(n, _)| names.contains(&n.as_str())) {
        assert!(text.contains(needle), "{name} lacks {needle:?}:\n{text}");
    }
}

fn args(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// Key and certificate material

#[test]
fn a_pem_with_literal_newlines_is_named_and_never_echoed() {
    let reports = Reports::new("pem");
    let flags = [
        "--var".to_owned(),
        format!("CA={}", literal_newlines("CERTIFICATE")),
        "--var".to_owned(),
        format!("KEY={}", literal_newlines("PRIVATE KEY")),
        // Well formed, so the listener gets as far as its key.
        "--var".to_owned(),
        format!("CERT=-----BEGIN CERTIFICATE-----\n{BODY}\n-----END CERTIFICATE-----\n"),
    ];
    let out = Test::new()
        .write(
            "suite/ca.rhai",
            r#"
            let server = listen("127.0.0.1:0");
            connect(server.addr, #{tls: #{ca: CA}});
            "#,
        )
        .write(
            "suite/key.rhai",
            r#"listen("127.0.0.1:0", #{tls: #{cert: CERT, key: KEY}});"#,
        )
        .path("suite")
        .args(&args(&flags))
        .args(&args(&reports.args()))
        .run();
    out.code(4);
    let texts = reports.everything(&out);
    nowhere(&texts, &BODY[..24]);
    // pki-types' error shows the line as bytes in decimal: `[45, 45, 45, 45, 45, 66, …`.
    nowhere(&texts, "45, 45, 45");
    nowhere(&texts, "99, 50, 57");
    // Whole in the one-line messages; the rendered diagnostics may wrap it.
    let all = ["stderr", "junit", "tap", "json"];
    in_each(&texts, &all, "tls: `ca`: line 1 is not a PEM header");
    in_each(&texts, &all, "tls: `key`: line 1 is not a PEM header");
    in_each(&texts, &all, "written literally?");
    in_each(
        &texts,
        &["junit"],
        "`ca`: line 1 is not a PEM header: was `\\n` written literally?",
    );
}

#[test]
fn a_key_given_as_the_certificate_is_named_without_its_content() {
    let key = format!("-----BEGIN PRIVATE KEY-----\n{BODY}\n-----END PRIVATE KEY-----\n");
    let out = Test::new()
        .args(&["--var", &format!("KEY={key}")])
        .script(
            r#"
            let e = assert_err(|| listen("127.0.0.1:0", #{tls: #{cert: KEY, key: KEY}}), "tls");
            print(e.message);
            "#,
        )
        .run();
    out.code(0)
        .stdout_has("`cert`: holds `PRIVATE KEY`, not a `CERTIFICATE`")
        .stdout_has("are `cert` and `key` swapped?");
    assert!(!out.stdout.contains(&BODY[..24]), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// --secret and SOCKSCRIPT_SECRET_*

const SECRET: &str = "s3cr3t-xyz";

/// Prints the secret, sends it through a connection of its own (both ends in the transcript),
/// and fails an assertion that shows it.
const USES_TOKEN: &str = r#"
let server = listen("127.0.0.1:0");
let echo = spawn(|| {
    let c = server.accept();
    c.send_line(c.recv_line());
    c.close();
});
print(`the token is ${TOKEN}`);
let conn = connect(server.addr);
conn.send_line(`auth ${TOKEN}`);
print(`echoed: ${conn.recv_line()}`);
echo.join();
assert_eq(TOKEN, "other");
"#;

/// Receives the secret among binary bytes and times out waiting for more: the diagnostic shows
/// what had arrived as a hexdump.
const TOKEN_IN_A_HEXDUMP: &str = r#"
let server = listen("127.0.0.1:0");
let sender = spawn(|| {
    let c = server.accept();
    let data = blob();
    data += 0;
    data += TOKEN.to_blob();
    data += 255;
    c.send(data);
    c.recv_all();
});
let conn = connect(server.addr);
conn.timeout = 300;
conn.recv_until("never");
"#;

/// Sends the secret in two pieces, the second only once the first has been read: it is in the
/// transcript as two sends and two reads.
const TOKEN_IN_TWO_PIECES: &str = r#"
let server = listen("127.0.0.1:0");
let ready = channel();
let sender = spawn(|| {
    let c = server.accept();
    c.send(TOKEN.sub_string(0, 3));
    ready.recv();
    c.send(TOKEN.sub_string(3));
    c.recv_all();
});
let conn = connect(server.addr);
let first = conn.recv_exact(3);
ready.send(1);
assert_eq(first + conn.recv_exact(TOKEN.len() - 3), TOKEN);
"#;

#[test]
fn a_secret_is_masked_in_run_mode_output_and_trace() {
    let out = Test::new()
        .args(&["--trace", "--secret", &format!("TOKEN={SECRET}")])
        .script(USES_TOKEN)
        .run();
    out.code(1)
        .stdout_has("the token is ***\n")
        .stdout_has("echoed: auth ***\n")
        .stderr_has("\"auth ***\\n\"")
        .stderr_has("left: \"***\"");
    assert!(!out.stdout.contains(SECRET), "{}", out.stdout);
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
}

/// Run mode's `--trace` prints each event as it happens, before the rest of a split secret
/// arrives: the end that begins the secret is masked, then the start that finishes it.
#[test]
fn a_secret_split_across_two_reads_is_masked_in_the_live_trace() {
    let out = Test::new()
        .args(&["--trace", "--secret", &format!("TOKEN={SECRET}")])
        .script(TOKEN_IN_TWO_PIECES)
        .run();
    out.code(0);
    // Each part's send and its read, every one shown as the mask alone.
    assert_eq!(
        out.stderr.matches("\n    \"***\"\n").count(),
        4,
        "{}",
        out.stderr
    );
    for part in ["s3c", "r3t-xyz"] {
        assert!(
            !out.stderr.contains(part),
            "{part:?} shows:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_secret_is_masked_in_test_mode_and_every_report() {
    let reports = Reports::new("secret");
    let out = Test::new()
        .write("suite/a_uses_token.rhai", USES_TOKEN)
        .write("suite/b_hexdump.rhai", TOKEN_IN_A_HEXDUMP)
        .write("suite/c_pieces.rhai", TOKEN_IN_TWO_PIECES)
        // A kind the script makes up is the failure's type in every report.
        .write(
            "suite/d_thrown_kind.rhai",
            "throw #{kind: `bad_${TOKEN}`, message: \"thrown\"};\n",
        )
        // A module's lines drawn where its assertion failed.
        .write(
            "suite/lib/tok.rhai",
            &format!(
                "fn check(t) {{\n    let known = \"{SECRET}\";\n    assert_eq(t, known);\n}}\n"
            ),
        )
        .write(
            "suite/e_module.rhai",
            "import \"lib/tok\" as tok;\ntok::check(\"x\");\n",
        )
        .path("suite")
        .args(&["--trace", "--secret", &format!("TOKEN={SECRET}")])
        // An empty secret masks nothing.
        .args(&["--secret", "EMPTY="])
        .args(&args(&reports.args()))
        .run();
    out.code(4);
    let texts = reports.everything(&out);
    nowhere(&texts, SECRET);
    nowhere(&texts, "s3cr3t");
    // The hexdump's bytes: `73 33 63 72 33 74` is `s3cr3t`.
    nowhere(&texts, "73 33 63 72");
    nowhere(&texts, "7333637233");
    // Split across two events of a stream, it is masked in both.
    nowhere(&texts, "r3t-xyz");
    nowhere(&texts, "\"s3c\"");
    in_each(&texts, &["stderr"], "c_pieces.rhai: ok");
    in_each(
        &texts,
        &["stderr", "junit", "tap", "json"],
        "the token is ***",
    );
    in_each(&texts, &["stderr", "tap"], "left: \"***\"");
    in_each(&texts, &["junit"], "left: &quot;***&quot;");
    in_each(&texts, &["json"], "left: \\\"***\\\"");
    in_each(&texts, &["stderr", "json"], "auth ***");
    in_each(&texts, &["stderr", "junit", "tap", "json"], "|.***.|");
    in_each(&texts, &["stderr"], "a_uses_token.rhai: FAILED");
    in_each(&texts, &["junit", "tap", "json"], "bad_***");
    // Its line is drawn (the secret is nowhere, above).
    in_each(&texts, &["stderr", "junit", "tap", "json"], "let known = ");
}

#[test]
fn an_environment_secret_is_masked_even_as_a_number() {
    let reports = Reports::new("env-secret");
    let out = Test::new()
        .write(
            "suite/pin.rhai",
            r#"
            print(`pin ${pin}, word ${env("SOCKSCRIPT_SECRET_word")}`);
            assert_eq(pin + 0, 1);
            "#,
        )
        .path("suite")
        .env("SOCKSCRIPT_SECRET_pin", "604951")
        .env("SOCKSCRIPT_SECRET_word", "hunter2-abc")
        .args(&args(&reports.args()))
        .run();
    out.code(1);
    let texts = reports.everything(&out);
    nowhere(&texts, "604951");
    nowhere(&texts, "hunter2");
    in_each(
        &texts,
        &["stderr", "junit", "tap", "json"],
        "pin ***, word ***",
    );
    in_each(&texts, &["stderr", "junit", "tap", "json"], "left: ***");
}

#[test]
fn a_secret_without_a_name_is_a_usage_error_that_does_not_show_it() {
    Test::new()
        .args(&["--secret", SECRET])
        .script("print(1);")
        .run()
        .code(2)
        .stderr("error: --secret: expected NAME=VALUE (the value is not shown)\n");
}

// ---------------------------------------------------------------------------------------------
// env(name)

#[test]
fn env_reads_only_what_the_command_line_allows() {
    const READS: &str = r#"print(env("SOME_VAR"));"#;
    let denied = Test::new()
        .env("SOME_VAR", "visible-value")
        .script(READS)
        .run();
    denied
        .code(4)
        .stderr_has("env: `SOME_VAR` is not allowed: pass `--allow-env SOME_VAR`");
    assert!(
        !denied.stderr.contains("visible-value"),
        "{}",
        denied.stderr
    );
    assert!(
        !denied.stdout.contains("visible-value"),
        "{}",
        denied.stdout
    );

    Test::new()
        .env("SOME_VAR", "visible-value")
        .script(
            r#"
            let e = assert_err(|| env("SOME_VAR"), "permission_denied");
            print(e.message);
            print(env("SOCKSCRIPT_VAR_mine"));
            "#,
        )
        .env("SOCKSCRIPT_VAR_mine", "always-readable")
        .run()
        .code(0)
        .stdout("env: `SOME_VAR` is not allowed: pass `--allow-env SOME_VAR`\nalways-readable\n");

    for allow in ["SOME_VAR", "*"] {
        Test::new()
            .env("SOME_VAR", "visible-value")
            .args(&["--allow-env", allow])
            .script(READS)
            .run()
            .code(0)
            .stdout("visible-value\n");
    }
    // Allowed but not set: `()`, as before.
    Test::new()
        .args(&["--allow-env", "SOCKSCRIPT_TEST_UNSET_VAR"])
        .script(r#"assert_eq(env("SOCKSCRIPT_TEST_UNSET_VAR"), ());"#)
        .run()
        .code(0);
}

/// A `--secret-file` is a variable with the file's contents, masked whole and line by line:
/// a script printing the key, or only one line of it, shows `***`.
#[test]
fn a_secret_file_is_masked_whole_and_line_by_line() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
    let out = Test::new()
        .write("key.pem", key)
        .args(&["--secret-file", "KEY=key.pem"])
        .script(
            r#"
            print(KEY);
            print(KEY.split("\n")[1]);
            print(`bytes: ${KEY.len}`);
            "#,
        )
        .run();
    out.code(0).stdout("***\n\n***\nbytes: 108\n");
    assert!(!out.stdout.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"));
}
