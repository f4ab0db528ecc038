//! Packaging: the Dockerfile passes hadolint and builds what CI compiles into a non-root,
//! shell-less image; the troubleshooting guide covers every reason berth reports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// hadolint from the test bed's env file (`BERTH_HADOLINT`); None (skip) outside CI without it.
fn hadolint() -> Option<String> {
    match std::env::var("BERTH_HADOLINT") {
        Ok(path) => Some(path),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("BERTH_HADOLINT is not set (CI=true): run the tests through scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: BERTH_HADOLINT is not set (scripts/testbed up, then source its env file)");
            None
        }
    }
}

#[test]
fn the_dockerfile_passes_hadolint_without_any_finding() {
    let Some(hadolint) = hadolint() else {
        return;
    };
    // every rule at every level counts: "info" and "style" findings fail too
    let output = std::process::Command::new(&hadolint)
        .args(["--failure-threshold", "style", "--no-color", "Dockerfile"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run {hadolint}: {e}"));
    let findings = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "hadolint Dockerfile:\n{findings}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The instructions of the Dockerfile's last stage (the runtime image), continuation lines
/// joined, comments dropped.
fn runtime_stage(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let instructions: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

#[test]
fn the_image_runs_berth_as_a_numeric_non_root_user_without_a_shell() {
    let dockerfile = read("Dockerfile");
    // the release build with the lock file, as docs/container-image.md describes
    assert!(dockerfile.contains("cargo build --release --locked --bin berth"));
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    for stage in &stages {
        let image = stage.split_whitespace().nth(1).unwrap();
        assert!(
            image == "scratch" || (image.contains(':') && !image.ends_with(":latest")),
            "base image pinned by tag: {stage}"
        );
    }
    let runtime = runtime_stage(&dockerfile);
    assert_eq!(
        runtime[0], "FROM scratch",
        "the runtime image is empty but for what is copied"
    );
    assert!(runtime.contains(&"USER 65532:65532".to_owned()), "{runtime:?}");
    assert!(
        runtime.contains(&r#"ENTRYPOINT ["berth", "run"]"#.to_owned()),
        "{runtime:?}"
    );
    // exec form only, nothing that needs a shell at run time
    assert!(
        runtime
            .iter()
            .all(|i| !i.starts_with("RUN ") && !i.starts_with("SHELL ") && !i.starts_with("CMD ")),
        "{runtime:?}"
    );
    // the build context holds only what the build reads
    let ignored = read(".dockerignore");
    assert!(ignored.lines().any(|l| l == "*"), ".dockerignore starts from nothing");
    for included in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
        assert!(ignored.lines().any(|l| l == included), ".dockerignore lacks {included}");
    }
}

/// The string literals `"Reason"` (CamelCase, no spaces) in `text`.
fn literals(pattern: &str, text: &str) -> Vec<String> {
    regex::Regex::new(pattern)
        .unwrap()
        .captures_iter(text)
        .flat_map(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .map(|m| m.as_str().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The body of every `fn <name>(` in `text`: up to the first line that closes it at the
/// function's own indentation.
fn bodies<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&format!("fn {name}(")) {
        let line_start = rest[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let indent = &rest[line_start..start];
        let indent = &indent[..indent.len() - indent.trim_start().len()];
        let close = format!("\n{indent}}}\n");
        let end = rest[start..].find(&close).map(|i| start + i).unwrap_or(rest.len());
        found.push(&rest[start..end]);
        rest = &rest[end..];
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.to_string_lossy().ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

/// Every reason berth writes into a condition or an Event, as found in the source. What this
/// covers (a grep, not a parser): the string literals of every `fn reason(` body (errors, AWS
/// error kinds, each kind's Change), the reason after `Progress::X,` in the status builders,
/// those of `fn compliance(` (ScanCompliant), and Event reasons given as literals next to an
/// `EventType` or to a repository `scope.event(`.
fn reasons_in_the_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut reasons = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // unit tests name made-up reasons
        let text = text.split("#[cfg(test)]").next().unwrap();
        for body in bodies(text, "reason").into_iter().chain(bodies(text, "compliance")) {
            reasons.extend(literals(r#""([A-Z][A-Za-z]+)""#, body));
        }
        reasons.extend(literals(
            r#"Progress::\w+,\s*(?:if \w+ \{ "(\w+)" \} else \{ "(\w+)" \}|"(\w+)")"#,
            text,
        ));
        reasons.extend(literals(r#"EventType::\w+,\s*"([A-Z][A-Za-z]+)""#, text));
        reasons.extend(literals(r#"\.event\(\s*"([A-Z][A-Za-z]+)""#, text));
    }
    reasons
}

#[test]
fn the_troubleshooting_guide_explains_every_reason_berth_reports() {
    let reasons = reasons_in_the_code();
    // the scan must keep finding each family, or the check below would pass on nothing
    for known in [
        "InvalidSpec",
        "AwsThrottled",
        "Synced",
        "Previewed",
        "RepositoryNotReady",
        "ThresholdExceeded",
        "NoImage",
        "DriftCorrected",
        "Adopted",
        "Created",
        "LifecyclePolicyRemoved",
    ] {
        assert!(
            reasons.contains(known),
            "the scan of src/ no longer finds {known}: {reasons:?}"
        );
    }
    let guide = read("docs/troubleshooting.md");
    let missing: Vec<&String> = reasons
        .iter()
        .filter(|reason| !guide.contains(&format!("`{reason}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md does not mention {missing:?}"
    );
}
