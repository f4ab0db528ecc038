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
    crate::naming::wildcard_matches(filter, repository)
}

#[cfg(test)]
#[path = "wildcard_tests.rs"]
mod tests;
