//! The skip rule itself (tests/common/skip.rs), as a developer sees it:
//! this binary runs its own ignored `a_test_whose_service_is_missing`
//! (which skips) as a child process and reads what a plain `cargo test`
//! would print.

mod common;

use std::process::{Command, Output};

#[test]
#[ignore = "run by the_skip_rule_is_visible_counted_and_fails_under_ci"]
fn a_test_whose_service_is_missing() {
    common::skip::skip::<()>("the demo service is not running");
}

fn run(ci: Option<&str>, skips: &std::path::Path) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", "a_test_whose_service_is_missing"])
        .env("TOWER_OTP_TEST_SKIPS", skips)
        .env_remove("CI");
    if let Some(ci) = ci {
        command.env("CI", ci);
    }
    command.output().unwrap()
}

#[test]
fn the_skip_rule_is_visible_counted_and_fails_under_ci() {
    let dir = std::env::temp_dir().join(format!("tower-otp-skip-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let skips = dir.join("skips.txt");

    for ci in [None, Some("false"), Some("0"), Some("")] {
        let _ = std::fs::remove_file(&skips);
        let out = run(ci, &skips);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "CI={ci:?}: a skip is not a failure\n{stdout}{stderr}"
        );
        // One line past the capture (the test passed, so libtest printed
        // none of its captured output)...
        let line = "SKIPPED a_test_whose_service_is_missing: the demo service is not running";
        assert_eq!(stderr.matches(line).count(), 1, "CI={ci:?}:\n{stderr}");
        // ...counted when the binary ends...
        assert!(
            stderr.contains("SKIPPED 1 test(s) of this binary"),
            "CI={ci:?}:\n{stderr}"
        );
        // ...and recorded for .ci/run.
        let recorded = std::fs::read_to_string(&skips).unwrap();
        assert_eq!(
            recorded
                .lines()
                .filter(|l| l.starts_with("SKIPPED "))
                .count(),
            1
        );
    }
    for ci in ["true", "TRUE", "1"] {
        let out = run(Some(ci), &skips);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "CI={ci}: a missing service must fail\n{stdout}"
        );
        assert!(stdout.contains("CI is set"), "CI={ci}:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
