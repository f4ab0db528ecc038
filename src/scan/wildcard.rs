//! ECR's scanning repository filters, as the Amazon ECR User Guide ("Filters to choose which
//! repositories are scanned") documents them:
//!
//! - a filter **without** `*` matches every repository name that *contains* it (`prod` matches
//!   `prod`, `repo-prod`, `prod-repo`, `prodrepo`);
//! - a filter **with** `*` matches a name where each `*` stands for zero or more characters, and
//!   the whole name must match (`prod*` matches `prod-repo` but not `repo-prod`; `*prod` the
//!   reverse; `prod*repo` matches `prodrepo` and `prod-repo`).
//!
//! `*` crosses `/` (repository names are not paths to ECR); no other character is special.

/// Whether the scanning filter `filter` selects the repository named `repository`.
pub fn filter_matches(filter: &str, repository: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    if !filter.contains('*') {
        return repository.contains(filter);
    }
    glob_matches(filter.as_bytes(), repository.as_bytes())
}

/// Whole-text match of `pattern`, whose `*` matches any run of bytes (the filter grammar is
/// ASCII). Linear backtracking to the last `*`, no recursion.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // after the last `*` seen: the pattern position behind it and the text position it reached
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            resume = Some((p + 1, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((after_star, reached)) = resume {
            // let the last `*` swallow one more byte and retry
            resume = Some((after_star, reached + 1));
            p = after_star;
            t = reached + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
#[path = "wildcard_tests.rs"]
mod tests;
