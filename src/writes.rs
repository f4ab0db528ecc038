//! Writes to the apiserver whose answer berth does not read: the object (or Event) the
//! apiserver sends back is checked for an error status and dropped, not decoded. At 1,000
//! repositories berth makes about four such writes per repository while converging, and
//! decoding each answer (the whole object, managed fields included) was CPU spent for nothing.

use kube::api::{Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::{Client, Resource};
use serde::Serialize;

/// Server-side applies `status` as the status of the object `name` under `manager`, forcing
/// ownership of those fields (each manager owns its own; see DESIGN.md).
pub async fn apply_status<K>(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
    manager: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let request = Request::new(K::url_path(&(), namespace))
        .patch_subresource(
            "status",
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(drop)
}

/// Creates `object` (which names itself).
pub async fn create<K>(client: &Client, namespace: Option<&str>, object: &K) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
    let request = Request::new(K::url_path(&(), namespace))
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(drop)
}
