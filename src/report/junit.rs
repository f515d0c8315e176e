//! `--report-junit`: one `<testsuite name="sockscript">`, one `<testcase>` per scenario, for CI
//! dashboards. As in hurl, failure is not error: an assertion that did not hold is a
//! `<failure>`, a socket error, timeout or compile error is an `<error>`. The element text is
//! the diagnostic as the terminal shows it, without colour. quick-junit writes and escapes the
//! XML; this file only chooses what goes where.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::escape;
use crate::outcome::{Outcome, Status};

const NAME: &str = "sockscript";

/// The run as a JUnit XML document.
/// `--report-junit`.
pub const FORMAT: super::Format = super::Format {
    name: "junit",
    flag: "--report-junit",
    render: super::Render::Run(render),
    suite: true,
    whole_payloads: false,
};

pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut suite = TestSuite::new(NAME);
    suite.set_time(elapsed);
    suite.add_test_cases(outcomes.iter().map(case));
    let mut report = Report::new(NAME);
    report.set_time(elapsed);
    report.add_test_suite(suite);
    // Writing into memory cannot fail; quick-xml escapes every text and attribute.
    report.to_string().unwrap_or_default()
}

fn case(o: &Outcome) -> TestCase {
    let status = match o.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Failed => not_passed(o, NonSuccessKind::Failure),
        Status::Errored | Status::CompileError => not_passed(o, NonSuccessKind::Error),
    };
    let mut case = TestCase::new(xml_text(&o.name), status);
    case.set_classname(NAME).set_time(o.duration);
    if !o.stdout.is_empty() {
        case.set_system_out(xml_text(&o.stdout));
    }
    case
}

fn not_passed(o: &Outcome, kind: NonSuccessKind) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    match &o.diagnostic {
        Some(d) => {
            // An attribute value is one line: a parser folds newlines in it into spaces.
            let first = d.message.lines().next().unwrap_or_default();
            status
                .set_message(xml_text(first))
                .set_type(xml_text(d.code.as_str()))
                .set_description(xml_text(d.render(false).trim_start()));
        }
        None => {
            status.set_message(super::json::status_name(o.status));
        }
    }
    status
}

/// XML 1.0 cannot hold most control characters, not even as `&#1;`, nor U+FFFE and U+FFFF,
/// and quick-junit drops control characters (and whole ANSI escape sequences). A peer's stray
/// byte is evidence, so it is kept visible: a C0 control as its Unicode control picture (`\x01`
/// becomes `␁`), anything else a dashboard should not act on (DEL, C1 controls, bidi
/// overrides, noncharacters) as its escape (`\u{9b}`, see [`crate::escape`]).
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(c),
            '\0'..='\x1f' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            c if escape::is_unsafe(c) => escape::push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Code, Diag};
    use crate::net::ErrorKind;

    fn outcome(name: &str, status: Status, diagnostic: Option<Diag>) -> Outcome {
        Outcome::for_test(name, status, diagnostic, Duration::from_millis(1500))
    }

    fn sample() -> Vec<Outcome> {
        let mut passed = outcome("greeting.rhai", Status::Passed, None);
        passed.stdout = "got <b> & \"q\" \x01\x1b[31m\n".into();
        let diag = Diag {
            code: Code::Assertion,
            message: "expected `<ok>` & got \"no\"".into(),
            file: "bad.rhai".into(),
            source: "assert(false);\n".into(),
            labels: vec![(0, 6, "this assertion failed".into())],
            help: None,
            line: Some(1),
            on: Default::default(),
            more: Vec::new(),
            failed_in_module: false,
        };
        let failed = outcome("bad.rhai", Status::Failed, Some(diag));
        let errored = outcome(
            "refused.rhai",
            Status::Errored,
            Some(Diag::plain(
                ErrorKind::ConnectionRefused,
                "connect failed\nsecond line",
                "x.rhai",
            )),
        );
        let broken = outcome("broken.rhai", Status::CompileError, None);
        vec![passed, failed, errored, broken]
    }

    #[test]
    fn renders_one_suite_with_failures_apart_from_errors() {
        let xml = render(&sample()[..3], Duration::from_millis(2250));
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="sockscript" tests="3" skipped="0" failures="1" errors="1" time="2.250">
    <testsuite name="sockscript" tests="3" skipped="0" errors="1" failures="1" time="2.250">
        <testcase name="greeting.rhai" classname="sockscript" time="1.500">
            <system-out>got &lt;b&gt; &amp; &quot;q&quot; ␁␛[31m
</system-out>
        </testcase>
        <testcase name="bad.rhai" classname="sockscript" time="1.500">
            <failure message="expected `&lt;ok&gt;` &amp; got &quot;no&quot;" type="assertion">× expected `&lt;ok&gt;` &amp; got &quot;no&quot;
   ╭─[bad.rhai:1:1]
 1 │ assert(false);
   · ───┬──
   ·    ╰── this assertion failed
   ╰────
</failure>
        </testcase>
        <testcase name="refused.rhai" classname="sockscript" time="1.500">
            <error message="connect failed" type="connection_refused">× connect failed
  │ second line
</error>
        </testcase>
    </testsuite>
</testsuites>
"#;
        assert_eq!(xml, expected);
    }

    #[test]
    fn parses_back_with_the_same_cases_counts_and_text() {
        let outcomes = sample();
        let xml = render(&outcomes, Duration::from_secs(3));
        let report = Report::deserialize_from_str(&xml)
            .unwrap_or_else(|e| panic!("not well-formed JUnit ({e}):\n{xml}"));
        assert_eq!(report.test_suites.len(), 1);
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "sockscript");
        assert_eq!((suite.tests, suite.failures, suite.errors), (4, 1, 2));
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["greeting.rhai", "bad.rhai", "refused.rhai", "broken.rhai"]
        );

        // quick-junit's reader trims the text it reads back; the literal test above has it whole.
        let out = suite.test_cases[0].system_out.as_deref().map(str::trim_end);
        assert_eq!(out, Some("got <b> & \"q\" ␁␛[31m"));
        match &suite.test_cases[1].status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                description,
                ..
            } => {
                assert_eq!(message.as_deref(), Some("expected `<ok>` & got \"no\""));
                let rendered = outcomes[1].diagnostic.as_ref().map(|d| d.render(false));
                let rendered = rendered.as_deref().map(str::trim);
                assert_eq!(description.as_deref().map(str::trim_end), rendered);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        for case in &suite.test_cases[2..] {
            assert!(matches!(
                case.status,
                TestCaseStatus::NonSuccess {
                    kind: NonSuccessKind::Error,
                    ..
                }
            ));
        }
        assert!(matches!(
            &suite.test_cases[3].status,
            TestCaseStatus::NonSuccess { message: Some(m), .. } if m.as_str() == "compile_error"
        ));
    }

    #[test]
    fn control_characters_become_visible_and_legal() {
        assert_eq!(
            xml_text("a\x00b\x01\t\n\r\x1b\u{ffff}\u{202e}é"),
            "a␀b␁\t\n\r␛\\u{ffff}\\u{202e}é"
        );
        let mut o = outcome("x\x02.rhai", Status::Passed, None);
        o.stdout = "\x07\x08\x0b\x0c\x7f \u{9b}31m \u{fdd0}\u{1fffe}".into();
        let xml = render(&[o], Duration::ZERO);
        assert!(xml.contains(r#"<testcase name="x␂.rhai""#), "{xml}");
        assert!(
            xml.contains(r"<system-out>␇␈␋␌\x7f \u{9b}31m \u{fdd0}\u{1fffe}</system-out>"),
            "{xml:?}"
        );
        assert!(!xml.chars().any(|c| escape::is_unsafe(c) && c != '\n'));
    }

    #[test]
    fn an_empty_run_is_an_empty_suite() {
        let xml = render(&[], Duration::ZERO);
        assert!(xml.contains(r#"<testsuite name="sockscript" tests="0" skipped="0" errors="0" failures="0" time="0.000"/>"#), "{xml}");
    }
}
