//! Dependencies run one way (ARCHITECTURE.md): a module of the crate
//! imports only modules of its own layer or of layers below it. This test
//! reads the sources and fails on any `crate::` path that points upwards.

use std::{collections::BTreeMap, fs, path::Path};

/// Layer of each top-level module: higher numbers are higher layers.
fn layer_of(module: &str) -> Option<(u8, &'static str)> {
    Some(match module {
        // test_util builds whole `Otp`s for the conformance suite.
        "lib" | "otp" | "config" | "env" | "readiness" | "production" | "test_util" | "admin" => {
            (4, "composition")
        }
        "middleware" | "routes" => (3, "HTTP"),
        "engine" | "gate" | "extract" | "link" => (2, "domain"),
        "limit" | "store" | "delivery" | "notify" | "template" | "policy" | "audit" | "events"
        | "test_mode" => (1, "services"),
        "contact" | "code" | "hash" | "argon" | "secret" | "error" | "time" | "language"
        | "purpose" | "telemetry" => (0, "primitives"),
        _ => return None,
    })
}

/// Pairs inside one layer that may only run one way: (lower, higher).
const ORDERED_WITHIN: &[(&str, &str)] = &[("store", "limit"), ("delivery", "notify")];

/// Items the crate root re-exports, by the module that defines them.
fn root_item(name: &str) -> Option<&'static str> {
    Some(match name {
        "Otp" | "OtpBuilder" | "MIN_SECRET_LEN" => "otp",
        "OtpConfig" => "config",
        "Admin" => "admin",
        "ApiError" | "ConfigError" | "ErrorFormat" => "error",
        "Channel" | "Contact" | "Email" | "Mobile" | "Region" => "contact",
        "MemoryStore" | "OtpStore" | "StoreError" => "store",
        "Notifier" | "NotifyError" => "notify",
        "Secret" => "secret",
        "OtpLayer" | "OtpService" => "middleware",
        "VerifiedContact"
        | "VerifiedEmail"
        | "VerifiedMobile"
        | "GrantChecker"
        | "VerificationRejection"
        | "verify_parts" => "gate",
        "ClientAddr" | "ForwardedHeader" | "TrustedProxies" | "Rule" | "RuleKey" | "RuleScope"
        | "SmsGuard" => "limit",
        "MAX_CODE_LENGTH" | "MIN_CODE_LENGTH" => "code",
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a source line names through `crate::`, outside comments.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let (from_rank, _) =
            layer_of(&module).unwrap_or_else(|| panic!("{module}: not in the layer map"));
        let text = fs::read_to_string(&file).unwrap();
        // A `use` list spans lines: join the file and split on `;` is
        // overkill; track `use crate::{` blocks instead.
        let mut in_use_block = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            let mut targets = crate_paths(line);
            if trimmed.starts_with("use crate::{") || trimmed.starts_with("pub use crate::{") {
                in_use_block = !trimmed.contains("};");
            } else if in_use_block {
                if trimmed.starts_with('}') {
                    in_use_block = false;
                } else if let Some(name) = trimmed.split([':', ',', ' ', '{']).next() {
                    targets.push(name.to_owned());
                }
            }
            for target in targets {
                let target = root_item(&target).map_or(target.clone(), str::to_owned);
                let Some((to_rank, to_layer)) = layer_of(&target) else {
                    continue;
                };
                let upward = to_rank > from_rank;
                let reversed = ORDERED_WITHIN
                    .iter()
                    .any(|(lower, higher)| *lower == module && *higher == target);
                if upward || reversed {
                    violations.insert(
                        format!("{}:{}", relative.display(), n + 1),
                        format!("{module} imports {target} ({to_layer})"),
                    );
                }
            }
        }
    }
    assert!(violations.is_empty(), "upward imports: {violations:#?}");
}
