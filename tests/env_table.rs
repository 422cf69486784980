//! The environment table is the one source of truth: the README's and the
//! crate docs' tables must list exactly the variables `from_env` reads.

use std::collections::BTreeSet;

use tower_otp::env::variables;

/// Every `UPPER_CASE` name in backticks in the `variable` column of the
/// Markdown tables of `text` (lines may carry a `//! ` prefix).
fn names_in_table_rows(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut column = None;
    for line in text.lines().map(str::trim_start) {
        let row = line.strip_prefix("//!").unwrap_or(line).trim();
        if !row.starts_with('|') {
            column = None;
            continue;
        }
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        if column.is_none() {
            // A table's header row names its columns.
            column = cells.iter().position(|c| *c == "variable");
            continue;
        }
        let Some(cell) = column.and_then(|i| cells.get(i)) else {
            continue;
        };
        for (i, part) in cell.split('`').enumerate() {
            let is_name = i % 2 == 1
                && part.len() > 2
                && part.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                && part.contains('_');
            if is_name {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

fn table() -> BTreeSet<String> {
    variables().iter().map(|v| v.name.to_owned()).collect()
}

/// The text from `heading` to the next heading of the same level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let rest = &text[start + heading.len()..];
    let level = heading.split(' ').next().unwrap();
    let end = rest.find(&format!("\n{level} ")).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn the_readme_documents_exactly_the_variables_read() {
    let readme = include_str!("../README.md");
    let documented = names_in_table_rows(section(readme, "## Configuration"));
    // The quickstart's own listening address is not a crate setting.
    let documented: BTreeSet<String> = documented
        .into_iter()
        .filter(|n| n != "PORT" && n != "HOST")
        .collect();
    let read = table();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "README, Configuration: missing {undocumented:?}, not read by from_env {unread:?}"
    );
}

#[test]
fn the_crate_docs_document_exactly_the_variables_read_and_what_each_sets() {
    let docs = include_str!("../src/env/mod.rs");
    let module_docs: String = docs
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(names_in_table_rows(&module_docs), table());
    for var in variables() {
        let row = module_docs
            .lines()
            .find(|l| l.starts_with(&format!("//! | `{}` |", var.name)))
            .unwrap();
        let sets_column = row.split('|').nth(2).unwrap();
        assert!(
            sets_column.contains(&format!("`{}`", var.sets)),
            "{}: the docs say it sets {sets_column:?}, the table says `{}`",
            var.name,
            var.sets
        );
    }
}

#[test]
fn every_grouped_variable_is_read_by_a_variable_of_the_table() {
    let read = table();
    for var in variables() {
        if let Some(head) = var.read_by() {
            assert!(
                read.contains(head),
                "{} is read by unknown {head}",
                var.name
            );
        }
    }
}

#[test]
fn errors_found_at_build_name_the_variable_that_set_the_setting() {
    // Parsed fine, refused by validation: named by its variable.
    let err = tower_otp::OtpBuilder::from_env_with(|k| match k {
        "OTP_SECRET" => Some("0123456789abcdef0123".into()),
        "OTP_TTL_SECONDS" => Some("0".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("OTP_TTL_SECONDS"), "{err}");
    // From the environment, a short secret names OTP_SECRET ...
    let err = tower_otp::OtpBuilder::from_env_with(|k| (k == "OTP_SECRET").then(|| "short".into()))
        .unwrap()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`OTP_SECRET`"), "{err}");
    // A parse error of a value read by a type's own parser, too.
    let err = tower_otp::OtpBuilder::from_env_with(|k| {
        (k == "OTP_TRUSTED_PROXIES").then(|| "10.0.0.0/8, banana".into())
    })
    .unwrap_err();
    assert!(err.to_string().contains("OTP_TRUSTED_PROXIES"), "{err}");
    // ... and from code, the builder method.
    let err = tower_otp::Otp::builder()
        .secret("short")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`secret`"), "{err}");
    assert!(!err.to_string().contains("OTP_"), "{err}");
}
