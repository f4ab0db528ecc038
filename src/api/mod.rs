//! The custom resource types of `ecr.berth.dev/v1alpha1` and the pieces they share.
// kube-derive takes one `printcolumn(...)` per column, which clippy reads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

mod access;
mod conditions;
mod lifecycle_policy;
mod reference;
mod repository;
mod scan_policy;
mod string_map;

pub use access::*;
pub use conditions::{
    ConditionStatus, Conditions, Progress, READY, RECONCILING, STALLED, progress_conditions, set_condition,
};
pub use lifecycle_policy::*;
pub use reference::api_reference;
pub use repository::*;
pub use scan_policy::*;
pub use string_map::StringMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub const GROUP: &str = "ecr.berth.dev";

/// Every CRD berth serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [EcrRepository::crd(), LifecyclePolicy::crd(), ScanPolicy::crd()]
        .into_iter()
        .map(without_null_enum_values)
        .collect()
}

/// kube lists `null` among the `enum` values of optional enums; apiservers before 1.2x fail to
/// convert such a CRD. The fields stay `nullable`, which admits null on its own.
fn without_null_enum_values(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                    values.retain(|v| !v.is_null());
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(crd).expect("a CRD serializes to JSON");
    strip(&mut value);
    serde_json::from_value(value).expect("a CRD without null enum values is still a CRD")
}

/// One CRD as the YAML document that `berth crds` prints and `crds/` holds.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML")
}

/// The file name of a CRD under `crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Where the Helm chart keeps its copy of `crds/` (relative to the chart's directory): its
/// templates install these files (Helm never upgrades a chart's own `crds/` directory).
pub const CHART_CRD_DIR: &str = "files/crds";

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    crds().iter().map(|crd| format!("---\n{}", crd_yaml(crd))).collect()
}

/// Removes every `x-kubernetes-validations` key: apiservers older than 1.25 reject them in
/// server-side apply (HTTP 500) and ignore them otherwise.
pub fn strip_cel_rules(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_cel_rules);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_cel_rules),
        _ => {}
    }
}

/// Server-side applies every CRD (field manager `berth`) and waits until each is Established.
/// `strip_cel` removes the CEL rules that apiservers before 1.25 refuse.
pub async fn install_crds(client: &kube::Client, strip_cel: bool) -> Result<(), kube::Error> {
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};

    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut body = serde_json::to_value(&crd).expect("a CRD serializes to JSON");
        if strip_cel {
            strip_cel_rules(&mut body);
        }
        api.patch(&name, &PatchParams::apply("berth").force(), &Patch::Apply(&body))
            .await?;
    }
    for crd in crds() {
        let name = crd.metadata.name.unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), established).await;
    }
    Ok(())
}

#[cfg(test)]
mod cel_tests;
