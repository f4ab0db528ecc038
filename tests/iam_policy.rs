//! The IAM policies in `docs/` allow every AWS operation berth performs.
//!
//! Two sources of operations: the SDK calls written in `src/aws/` (always checked), and the
//! operations the recording proxy saw during the whole test suite (`scripts/test` sets
//! `BERTH_RECORD_OPERATIONS` and runs the ignored test afterwards).
//!
//! The evaluator below is a small subset of IAM's: Allow and Deny statements with `Action`
//! and `Resource` (wildcards `*` and `?`, policy variables from the request context) and
//! `ArnEquals`/`ArnLike`/`StringEquals`/`StringLike` conditions. Each operation is evaluated
//! on the resource berth names when it runs with its defaults (`--iam-role-path`, the GitHub
//! provider) and with `--iam-permissions-boundary` set to the boundary the docs describe.
//! It does not model what IAM checks beyond the call itself (e.g. the KMS grant ECR makes
//! for a repository encrypted with a customer key); the docs list those actions by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::Args;
use serde_json::Value;

const POLICIES: [&str; 2] = ["docs/iam-policy.json", "docs/iam-policy-least-privilege.json"];
const ACCOUNT: &str = "123456789012";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/berth-push-boundary";

/// STS answers `GetCallerIdentity` to every caller, even under an explicit deny.
const NEEDS_NO_PERMISSION: [&str; 1] = ["sts:GetCallerIdentity"];

fn policy(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
}

/// `--iam-role-path`'s default, read from the flag's definition (not from the environment).
fn default_role_path() -> String {
    let command = berth::config::RunArgs::augment_args(clap::Command::new("berth"));
    let argument = command
        .get_arguments()
        .find(|a| a.get_id() == "iam_role_path")
        .expect("a --iam-role-path flag");
    argument.get_default_values()[0].to_string_lossy().into_owned()
}

/// The request context: what a call of `action` by berth names, with its defaults.
struct Request {
    action: String,
    resource: String,
    context: BTreeMap<&'static str, String>,
}

impl Request {
    fn of(action: &str) -> Request {
        let (service, name) = action.split_once(':').expect("service:Operation");
        let role = format!(
            "arn:aws:iam::{ACCOUNT}:role{}team-app-817d69d9-push",
            default_role_path()
        );
        let resource = match (service, name) {
            ("ecr", "GetRegistryScanningConfiguration" | "PutRegistryScanningConfiguration") => "*".to_owned(),
            ("ecr", _) => format!("arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/team/app"),
            // listings have no resource type in IAM: they are granted on "*" or not at all
            ("iam", "ListOpenIDConnectProviders" | "ListRoles") => "*".to_owned(),
            ("iam", "CreateOpenIDConnectProvider" | "TagOpenIDConnectProvider") => {
                format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com")
            }
            ("iam", _) if name.contains("Role") => role,
            _ => panic!("no resource known for {action}: add it to Request::of"),
        };
        let mut context = BTreeMap::from([("aws:PrincipalAccount", ACCOUNT.to_owned())]);
        // the role already carries the boundary, or the request sets it
        if service == "iam" && name.contains("Role") {
            context.insert("iam:PermissionsBoundary", BOUNDARY.to_owned());
        }
        Request {
            action: action.to_owned(),
            resource,
            context,
        }
    }

    fn variables(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (key, value) in &self.context {
            text = text.replace(&format!("${{{key}}}"), value);
        }
        text
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

/// A string or a list of strings.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

fn conditions_hold(statement: &Value, request: &Request) -> bool {
    let Some(blocks) = statement.get("Condition").and_then(Value::as_object) else {
        return true;
    };
    blocks.iter().all(|(operator, keys)| {
        keys.as_object()
            .expect("a condition block is an object")
            .iter()
            .all(|(key, values)| {
                let Some(actual) = request.context.get(key.as_str()) else {
                    return false;
                };
                strings(Some(values)).iter().any(|expected| {
                    let expected = request.variables(expected);
                    match operator.as_str() {
                        "ArnEquals" | "StringEquals" => *actual == expected,
                        "ArnLike" | "StringLike" => glob(&expected, actual),
                        other => panic!("the evaluator does not know the condition operator {other}"),
                    }
                })
            })
    })
}

fn matches(statement: &Value, request: &Request) -> bool {
    let action = request.action.to_ascii_lowercase();
    strings(statement.get("Action"))
        .iter()
        .any(|pattern| glob(&pattern.to_ascii_lowercase(), &action))
        && strings(statement.get("Resource"))
            .iter()
            .any(|pattern| glob(&request.variables(pattern), &request.resource))
        && conditions_hold(statement, request)
}

/// IAM's decision for one identity policy: an explicit Deny wins, else some Allow must match.
fn allowed(policy: &Value, request: &Request) -> bool {
    let statements = policy["Statement"].as_array().expect("Statement is a list");
    let effect = |effect: &str| {
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .any(|s| matches(s, request))
    };
    !effect("Deny") && effect("Allow")
}

/// The operations of `operations` that a policy in `docs/` does not allow.
fn refused(operations: &BTreeSet<String>) -> Vec<String> {
    let mut refused = Vec::new();
    for file in POLICIES {
        let policy = policy(file);
        for operation in operations {
            if !NEEDS_NO_PERMISSION.contains(&operation.as_str()) && !allowed(&policy, &Request::of(operation)) {
                refused.push(format!("{file} does not allow {operation}"));
            }
        }
    }
    refused
}

/// The SDK service each adapter file in `src/aws/` calls.
fn service_of(file: &str) -> &'static str {
    match file {
        "ecr.rs" | "scan.rs" => "ecr",
        "iam.rs" => "iam",
        "identity.rs" => "sts",
        other => panic!("src/aws/{other} calls AWS: name its service in service_of"),
    }
}

/// `list_open_id_connect_providers` → `ListOpenIdConnectProviders` (IAM compares action names
/// case-insensitively, so `ListOpenIDConnectProviders` is the same action).
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every SDK operation written in `src/aws/`: the first method called on an SDK client
/// (`client(region)`, `client`, `sts()`) in a chain. What this covers: calls made through
/// those client expressions, each ending in `.send()`; the test checks that it found as many
/// operations as there are `.send()` calls, and the same names that the adapters report
/// errors under (`AwsError::from_sdk("<Operation>", ...)`).
fn sdk_operations() -> BTreeSet<String> {
    let call = regex::Regex::new(r"(?:\bclient(?:\(region\))?|\.sts\(\))\s*\.([a-z_]+)\(\)").unwrap();
    let error_name = regex::Regex::new(r#"from_sdk\("([A-Za-z]+)""#).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
    let (mut operations, mut error_names) = (BTreeSet::new(), BTreeSet::new());
    let (mut calls, mut sends) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let whole = std::fs::read_to_string(&path).unwrap();
        // unit tests at the end of a file (e.g. the fence's, with a real client) are not berth's calls
        let text = whole.split("\n#[cfg(test)]").next().unwrap_or_default();
        sends += text.matches(".send()").count();
        if !call.is_match(text) {
            continue; // no SDK call (error.rs names operations in its unit tests only)
        }
        for found in call.captures_iter(text) {
            calls += 1;
            operations.insert(format!("{}:{}", service_of(&file), pascal_case(&found[1])).to_ascii_lowercase());
        }
        for found in error_name.captures_iter(text) {
            error_names.insert(format!("{}:{}", service_of(&file), &found[1]));
        }
    }
    assert_eq!(
        calls, sends,
        "every .send() in src/aws/ starts from an SDK client the scan recognises"
    );
    let lowercase: BTreeSet<String> = error_names.iter().map(|name| name.to_ascii_lowercase()).collect();
    assert_eq!(
        operations, lowercase,
        "the SDK calls in src/aws/ and the operation names their errors carry"
    );
    assert!(error_names.len() >= 30, "found only {error_names:?}");
    // the error names spell the actions as IAM does (`ListOpenIDConnectProviders`)
    error_names
}

#[test]
fn the_operations_written_in_src_aws_are_allowed_by_both_policies() {
    let operations = sdk_operations();
    let refused = refused(&operations);
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

/// Run by `scripts/test` after the whole suite, with the file the recording proxy appended to.
#[test]
#[ignore = "needs the operations recorded during the test suite (BERTH_RECORD_OPERATIONS); scripts/test runs it"]
fn the_operations_recorded_in_the_test_suite_are_allowed_by_both_policies() {
    let path = std::env::var("BERTH_RECORD_OPERATIONS").expect("BERTH_RECORD_OPERATIONS names the recording");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let operations: BTreeSet<String> = text.lines().map(str::to_owned).collect();
    // a recording that lost the end-to-end suite would pass vacuously
    for expected in ["ecr:CreateRepository", "iam:CreateRole", "sts:GetCallerIdentity"] {
        assert!(
            operations.contains(expected),
            "{path} lacks {expected}: did the end-to-end tests run through the recording proxy?"
        );
    }
    let unknown: Vec<&String> = operations.iter().filter(|o| o.starts_with("unknown:")).collect();
    assert!(unknown.is_empty(), "requests without a SigV4 service: {unknown:?}");
    println!("{} distinct operations recorded: {operations:?}", operations.len());
    let refused = refused(&operations);
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

#[test]
fn the_least_privilege_policy_confines_roles_to_the_path_and_the_boundary() {
    let policy = policy("docs/iam-policy-least-privilege.json");
    let path = default_role_path();
    assert_eq!(path, "/berth/");
    // outside the path
    let mut request = Request::of("iam:CreateRole");
    assert!(allowed(&policy, &request));
    request.resource = format!("arn:aws:iam::{ACCOUNT}:role/admin");
    assert!(!allowed(&policy, &request), "a role outside {path}");
    // without the boundary, or with another one
    for boundary in [None, Some("arn:aws:iam::123456789012:policy/AdministratorAccess")] {
        for action in ["iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"] {
            let mut request = Request::of(action);
            match boundary {
                Some(other) => request.context.insert("iam:PermissionsBoundary", other.to_owned()),
                None => request.context.remove("iam:PermissionsBoundary"),
            };
            assert!(!allowed(&policy, &request), "{action} with boundary {boundary:?}");
        }
    }
    // never widen a role
    for action in ["iam:DeleteRolePermissionsBoundary", "iam:AttachRolePolicy"] {
        assert!(!allowed(&policy, &Request::of(action)), "{action}");
    }
    // every role statement names the path, nothing wider (but the listing of the path's roles,
    // which IAM grants on "*" only)
    for statement in policy["Statement"].as_array().unwrap() {
        let actions = strings(statement.get("Action"));
        if statement["Effect"] == "Allow" && actions.iter().any(|a| a.contains("Role")) && actions != ["iam:ListRoles"]
        {
            assert_eq!(
                strings(statement.get("Resource")),
                [format!("arn:aws:iam::*:role{path}*")],
                "{statement}"
            );
        }
    }
}

#[test]
fn the_policies_refuse_what_berth_does_not_need() {
    for file in POLICIES {
        let policy = policy(file);
        for action in [
            "ecr:BatchDeleteImage",
            "ecr:PutImage",
            "iam:CreateUser",
            "iam:AttachRolePolicy",
        ] {
            let mut request = Request::of("ecr:DescribeImages");
            request.action = action.to_owned();
            assert!(!allowed(&policy, &request), "{file} allows {action}");
        }
    }
}
