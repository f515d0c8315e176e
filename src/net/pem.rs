//! Why a PEM text (a `ca`, `cert` or `key`) gave no certificate or key, in words that never
//! quote it. rustls-pki-types' own errors hold the offending line as bytes, which would put a
//! private key, printed in decimal, into stderr and every report. Parsing stays with
//! pki-types; this file only explains a failure, by line numbers and block labels.

use rustls::pki_types::pem::Error as PemError;

/// What the text should have held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Certificate,
    PrivateKey,
}

impl Want {
    fn labels(self) -> &'static [&'static str] {
        match self {
            Want::Certificate => &["CERTIFICATE"],
            Want::PrivateKey => &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
        }
    }

    fn what(self) -> &'static str {
        match self {
            Want::Certificate => "a `CERTIFICATE`",
            Want::PrivateKey => {
                "a private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
            }
        }
    }
}

/// What is wrong with `pem`, which held no usable `want` (`err` is the parser's error, if it
/// gave one): a line number, a block label, a hint, never a byte of the content.
pub(crate) fn problem(pem: &str, want: Want, err: Option<&PemError>) -> String {
    if let Some(why) = structure(pem) {
        return why;
    }
    let labels: Vec<&str> = pem
        .lines()
        .filter_map(|l| begin_label(l.trim_end()))
        .collect();
    if pem.trim().is_empty() {
        return "is empty".into();
    }
    if labels.is_empty() {
        return "holds no PEM block (no `-----BEGIN …-----` line): give the PEM text itself, \
                not a file name or DER bytes"
            .into();
    }
    if let Some(encrypted) = labels.iter().find(|l| l.contains("ENCRYPTED")) {
        return format!(
            "holds an encrypted key ({}): give it unencrypted, e.g. from `openssl pkey -in key.pem`",
            shown(encrypted)
        );
    }
    if !labels.iter().any(|l| want.labels().contains(l)) {
        let found = labels
            .iter()
            .map(|l| shown(l))
            .collect::<Vec<_>>()
            .join(", ");
        let swapped = match want {
            Want::Certificate if labels.iter().any(|l| l.contains("PRIVATE KEY")) => {
                " (a key where a certificate belongs: are `cert` and `key` swapped?)"
            }
            Want::PrivateKey if labels.contains(&"CERTIFICATE") => {
                " (a certificate where the key belongs: are `cert` and `key` swapped?)"
            }
            _ => "",
        };
        return format!("holds {found}, not {}{swapped}", want.what());
    }
    match err {
        Some(PemError::Base64Decode(_)) => {
            "a PEM block is not valid base64 (a character changed, lost or added?)".into()
        }
        Some(PemError::SectionTooLarge) => "a PEM block is larger than 256 MiB".into(),
        _ => "is not valid PEM".into(),
    }
}

/// A mistake in how the lines are laid out, if there is one.
fn structure(pem: &str) -> Option<String> {
    // (label, line) of the block being read.
    let mut open: Option<(&str, usize)> = None;
    for (i, line) in pem.split('\n').enumerate() {
        let n = i + 1;
        let line = line.trim_end();
        if line.contains("-----") && line.contains("\\n") {
            let what = if line.starts_with("-----END") {
                "an END line"
            } else {
                "a PEM header"
            };
            return Some(format!(
                "line {n} is not {what}: was `\\n` written literally?"
            ));
        }
        if line.starts_with("-----BEGIN ") {
            let Some(label) = begin_label(line) else {
                return Some(format!(
                    "line {n} is not a PEM header: it starts with `-----BEGIN ` but does not \
                     end with `-----`"
                ));
            };
            if let Some((open_label, m)) = open {
                return Some(format!(
                    "line {n} begins a block inside the {} block of line {m}, whose `-----END` \
                     line is missing",
                    shown(open_label)
                ));
            }
            open = Some((label, n));
        } else if let Some(rest) = line.strip_prefix("-----END ") {
            let label = rest.strip_suffix("-----");
            match (open, label) {
                (None, _) => {
                    return Some(format!("line {n} ends a PEM block that never began"));
                }
                (Some((open_label, _)), Some(label)) if label == open_label => open = None,
                (Some((open_label, m)), _) => {
                    return Some(format!(
                        "line {n} does not end the {} block of line {m}: it should be \
                         `-----END {}-----`",
                        shown(open_label),
                        if is_plain_label(open_label) {
                            open_label
                        } else {
                            "…"
                        }
                    ));
                }
            }
        } else if line.contains("-----BEGIN") {
            return Some(format!(
                "line {n} holds `-----BEGIN` but not at its start: is the text quoted or \
                 indented?"
            ));
        } else if let Some((open_label, m)) = open {
            let body = line.trim();
            if body.starts_with("Proc-Type:") && body.contains("ENCRYPTED") {
                return Some(format!(
                    "the {} block of line {m} is encrypted: give the key unencrypted, e.g. \
                     from `openssl pkey -in key.pem`",
                    shown(open_label)
                ));
            }
            if !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                let literal = if body.contains("\\n") {
                    ": was `\\n` written literally?"
                } else {
                    ""
                };
                return Some(format!(
                    "line {n}, in the {} block of line {m}, is not base64{literal}",
                    shown(open_label)
                ));
            }
        }
    }
    open.map(|(label, m)| {
        format!(
            "the {} block of line {m} has no `-----END` line: was the text cut short?",
            shown(label)
        )
    })
}

/// `CERTIFICATE` of `-----BEGIN CERTIFICATE-----`.
fn begin_label(line: &str) -> Option<&str> {
    line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

/// A label as the message shows it: only when it reads like one (`RSA PRIVATE KEY`), since a
/// mangled header line could hold anything.
fn shown(label: &str) -> String {
    if is_plain_label(label) {
        format!("`{label}`")
    } else {
        "a block with an unusual label".into()
    }
}

fn is_plain_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 40
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a real certificate: its body only has to look like base64.
    const BODY: &str = "MIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGVCb2R5Rm9yVGVzdHMwCgYIKoZIzj0EAwIw";

    fn cert() -> String {
        format!("-----BEGIN CERTIFICATE-----\n{BODY}\n-----END CERTIFICATE-----\n")
    }

    #[track_caller]
    fn says(pem: &str, want: Want, expected: &str) {
        let got = problem(pem, want, None);
        assert!(got.contains(expected), "{got:?} does not say {expected:?}");
        assert!(!got.contains(&BODY[..12]), "{got:?} quotes the content");
    }

    #[test]
    fn a_literal_backslash_n_is_named() {
        let literal = cert().replace('\n', "\\n");
        says(
            &literal,
            Want::Certificate,
            "line 1 is not a PEM header: was `\\n` written literally?",
        );
    }

    #[test]
    fn a_literal_backslash_n_in_the_body_or_end_line_is_named() {
        let body =
            format!("-----BEGIN CERTIFICATE-----\n{BODY}\\n{BODY}\n-----END CERTIFICATE-----\n");
        says(&body, Want::Certificate, "line 2, in the `CERTIFICATE` block of line 1, is not base64: was `\\n` written literally?");
        let end = format!("-----BEGIN CERTIFICATE-----\n{BODY}\n-----END CERTIFICATE-----\\n");
        says(
            &end,
            Want::Certificate,
            "line 3 is not an END line: was `\\n` written literally?",
        );
    }

    #[test]
    fn each_layout_mistake_says_which_line() {
        let cut = format!("-----BEGIN CERTIFICATE-----\n{BODY}\n");
        says(
            &cut,
            Want::Certificate,
            "the `CERTIFICATE` block of line 1 has no `-----END` line",
        );
        let bad = format!("-----BEGIN CERTIFICATE-----\n{BODY}!\n-----END CERTIFICATE-----\n");
        says(
            &bad,
            Want::Certificate,
            "line 2, in the `CERTIFICATE` block of line 1, is not base64",
        );
        says(
            "-----BEGIN CERTIFICATE--\n",
            Want::Certificate,
            "line 1 is not a PEM header",
        );
        says(
            &format!("  {}", cert()),
            Want::Certificate,
            "not at its start",
        );
        let nested = format!("-----BEGIN CERTIFICATE-----\n{}", cert());
        says(&nested, Want::Certificate, "line 2 begins a block inside");
        says(
            "-----END CERTIFICATE-----\n",
            Want::Certificate,
            "line 1 ends a PEM block that never began",
        );
        let mismatched = format!("-----BEGIN CERTIFICATE-----\n{BODY}\n-----END X509 CRL-----\n");
        says(
            &mismatched,
            Want::Certificate,
            "should be `-----END CERTIFICATE-----`",
        );
    }

    #[test]
    fn the_wrong_kind_of_block_is_named() {
        let key = cert().replace("CERTIFICATE", "PRIVATE KEY");
        says(
            &key,
            Want::Certificate,
            "holds `PRIVATE KEY`, not a `CERTIFICATE` (a key where a certificate belongs",
        );
        says(
            &cert(),
            Want::PrivateKey,
            "holds `CERTIFICATE`, not a private key",
        );
        let encrypted = cert().replace("CERTIFICATE", "ENCRYPTED PRIVATE KEY");
        says(&encrypted, Want::PrivateKey, "encrypted key");
        says("/etc/ssl/ca.pem", Want::Certificate, "holds no PEM block");
        says("", Want::Certificate, "is empty");
    }

    #[test]
    fn an_odd_label_is_not_quoted() {
        let odd = format!("-----BEGIN {BODY}-----\n{BODY}\n-----END {BODY}-----\n");
        says(
            &odd,
            Want::Certificate,
            "holds a block with an unusual label, not a `CERTIFICATE`",
        );
    }
}
