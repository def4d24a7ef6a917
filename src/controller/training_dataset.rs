//! TrainingDataset: a Role + RoleBinding so only the allowed service accounts can read the
//! credentials Secret; retention enforced on time (requeue for the expiry instant, then
//! `Retained=False/Expired`, and with `onExpiry: Delete` the backing PVC is deleted and the
//! deletion recorded in `status.deletedAt` and an Event: evidence for A.8.10).

use super::conditions::{self, Desired};
use super::error::{Context as _, Doing, Error, Result, Target};
use super::{
    Child, Context, Watches, apply, apply_status, cached_rbac, child_labels, drive,
    forbidden_condition, forbidden_to_annexa, foreign_children, name_conflict, owner_reference,
    refs, requeue_until, withdraw,
};
use crate::api::{CommonStatus, OnExpiry, TrainingDataset, TrainingDatasetStatus};
use crate::policy::pod_access::{listed, unallowed_readers};
use crate::policy::training_dataset::expiry;
use crate::policy::{self, Governed};
use futures::Future;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use std::sync::Arc;

/// Name of the Role and RoleBinding granting read access to the credentials Secret.
pub fn access_name(dataset: &TrainingDataset) -> String {
    format!("{}-credentials-reader", dataset.name_any())
}

/// The Role + RoleBinding letting exactly the allowed service accounts `get` the credentials
/// Secret, or None when there is no Secret or nobody is allowed.
pub fn build_access(dataset: &TrainingDataset) -> Option<(Role, RoleBinding)> {
    let secret = dataset.spec.credentials_secret.as_ref()?;
    let accounts = &dataset.spec.access.as_ref()?.allowed_service_accounts;
    if accounts.is_empty() {
        return None;
    }
    let meta = ObjectMeta {
        name: Some(access_name(dataset)),
        namespace: dataset.metadata.namespace.clone(),
        labels: Some(child_labels("trainingdataset", &dataset.name_any())),
        owner_references: owner_reference(dataset).map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".to_string()]),
            resource_names: Some(vec![secret.clone()]),
            verbs: vec!["get".to_string()],
            non_resource_urls: None,
        }]),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: access_name(dataset),
        },
        subjects: Some(
            accounts
                .iter()
                .map(|sa| Subject {
                    kind: "ServiceAccount".to_string(),
                    name: sa.clone(),
                    namespace: dataset.metadata.namespace.clone(),
                    api_group: None,
                })
                .collect(),
        ),
    };
    Some((role, binding))
}

/// The TrainingDataset Controller: its own kind, its Role and RoleBinding (from the shared
/// RBAC caches), the datasets it derives from and the policies.
pub fn controller(ctx: Arc<Context>, watches: &Watches) -> impl Future<Output = ()> + use<> {
    let feeds = &watches.state.feeds;
    let (s, s2) = (watches.state.clone(), watches.state.clone());
    let controller =
        Controller::for_shared_stream(feeds.datasets.changes(), feeds.datasets.store())
            .with_config(watches.config.clone())
            .owns_shared_stream(watches.roles.updates())
            .owns_shared_stream(watches.role_bindings.updates())
            .watches_shared_stream(feeds.datasets.updates(), move |parent| {
                let ns = parent.namespace().unwrap_or_default();
                let name = parent.name_any();
                refs(s.datasets.state_filter(|d| {
                    d.metadata.namespace.as_deref() == Some(ns.as_str())
                        && d.spec.derived_from.contains(&name)
                }))
            })
            .watches_shared_stream(feeds.policies.updates(), move |_| refs(s2.datasets.state()));
    drive(controller, reconcile, ctx, watches)
}

pub async fn reconcile(dataset: Arc<TrainingDataset>, ctx: Arc<Context>) -> Result<Action> {
    let (dataset, ctx) = (&*dataset, &*ctx);
    let namespace = super::namespace_of(dataset)?;
    let now = Timestamp::now();
    let profile = ctx.state.profile(&namespace);
    let eval = ctx.evaluate(Governed::Dataset(dataset), &profile, now);

    // The same engine call as the webhook: a dataset failing an Enforce control gets no Role
    // reading its Secret, whether or not the webhook saw it.
    let mut denied: Vec<&str> = eval.denials().map(|f| f.control).collect();
    denied.sort();
    denied.dedup();
    let mut foreign = Vec::new();
    let mut forbidden = None;
    let access = build_access(dataset).filter(|_| denied.is_empty());
    if let Some((role, binding)) = &access {
        foreign = foreign_children(&ctx.client, &[Child::of(role), Child::of(binding)]).await?;
        if foreign.is_empty() {
            let applied = async {
                apply(&ctx.client, role).await?;
                apply(&ctx.client, binding).await?;
                Ok::<_, Error>(())
            }
            .await;
            if let Err(error) = applied {
                forbidden = Some(forbidden_to_annexa(&error).ok_or(error)?);
            }
        }
    } else {
        // Nothing may be granted now (an Enforce control fails, or the spec no longer names a
        // Secret or a reader): a grant made earlier is withdrawn, binding first.
        let name = access_name(dataset);
        let binding_now = cached_rbac(ctx, |r| &r.role_bindings, &namespace, &name).await?;
        let role_now = cached_rbac(ctx, |r| &r.roles, &namespace, &name).await?;
        let withdrew_binding = withdraw(&ctx.client, dataset, binding_now.as_deref()).await?;
        let withdrew_role = withdraw(&ctx.client, dataset, role_now.as_deref()).await?;
        if withdrew_binding || withdrew_role {
            ctx.event(
                dataset,
                !denied.is_empty(),
                "AccessWithdrawn",
                format!(
                    "Role and RoleBinding {name:?} reading the credentials Secret withdrawn: {}",
                    withdrawal_reason(&eval)
                ),
            )
            .await;
        }
    }
    // A.8.3 where the data is read: running pods that reference the credentials Secret or the
    // claim as an account the dataset does not allow (admitted before the dataset existed,
    // outside enforced namespaces, or while the webhook was down).
    let readers = unallowed_readers(
        dataset,
        &super::running_pods(&ctx.client, &namespace).await?,
    );
    let access = if readers.is_empty() {
        Desired::new(
            "AccessRestricted",
            true,
            "OnlyAllowedReaders",
            "every running pod that reads the dataset runs as an allowed service account",
        )
    } else {
        Desired::new(
            "AccessRestricted",
            false,
            "UnallowedReaders",
            format!(
                "A.8.3 Information access restriction: {} read dataset {:?} as a service account it does not allow",
                listed(&readers),
                dataset.name_any()
            ),
        )
    };

    let created = dataset
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let expires_at = expiry(dataset, created).map_err(Error::Invalid)?;
    let mut deleted_at = dataset.status.as_ref().and_then(|s| s.deleted_at.clone());
    let expired = expires_at.is_some_and(|e| e <= now);
    let on_expiry = dataset
        .spec
        .retention
        .as_ref()
        .map(|r| r.on_expiry)
        .unwrap_or_default();
    let mut refused: Option<String> = None;
    if expired && on_expiry == OnExpiry::Delete && deleted_at.is_none() {
        if let Some(pvc) = &dataset.spec.source.pvc {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
            // Re-checked before deleting: the webhook let the dataset name this PVC only for a
            // user allowed to delete it; a PVC another object controls (a StatefulSet's, an
            // operator's) is never Annexa's to delete, and the deletion is bound to the UID read
            // here so a PVC recreated under the name in between is left alone.
            let target = || Target::new::<PersistentVolumeClaim>(Some(&namespace), pvc);
            let current = pvcs.get_opt(pvc).await.doing(Doing::Get, target)?;
            let owner = current
                .as_ref()
                .and_then(|c| foreign_controller(&c.metadata));
            if let Some(owner) = owner {
                refused = Some(format!(
                    "A.8.10 Information deletion: retention ended at {}; PersistentVolumeClaim {pvc:?} is controlled by {owner}, so Annexa does not delete it: delete the data through its owner",
                    expires_at.map(|e| e.to_string()).unwrap_or_default()
                ));
            } else if let Some(current) = &current {
                let params = DeleteParams {
                    preconditions: current.metadata.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                match pvcs.delete(pvc, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    // Annexa's own RBAC leaves this namespace out (rbac.namespaces): reported,
                    // retried hourly, never silent.
                    Err(kube::Error::Api(status)) if status.code == 403 => {
                        refused = Some(format!(
                            "A.8.10 Information deletion: retention ended at {}; Annexa's own RBAC does not allow it to delete PersistentVolumeClaim {pvc:?} in namespace {namespace:?} (see rbac.namespaces in the chart): {}",
                            expires_at.map(|e| e.to_string()).unwrap_or_default(),
                            status.message
                        ));
                    }
                    Err(e) => return Err(Error::api(Doing::Delete, target(), e)),
                }
            }
            if refused.is_none() {
                ctx.event(
                dataset,
                false,
                "DataDeleted",
                format!("A.8.10 Information deletion: retention expired; PersistentVolumeClaim {pvc:?} deleted"),
            )
            .await;
            }
        }
        if refused.is_none() {
            deleted_at = Some(Time(now));
        }
    }

    let retained = match (expires_at, expired) {
        (Some(_), true) if refused.is_some() => Desired::new(
            "Retained",
            false,
            "DeletionRefused",
            refused.clone().unwrap_or_default(),
        ),
        (None, _) => Desired::new(
            "Retained",
            true,
            "NoRetentionLimit",
            "no retention declared",
        ),
        (Some(e), false) => Desired::new(
            "Retained",
            true,
            "WithinRetention",
            format!("retained until {e}"),
        ),
        (Some(e), true) => Desired::new(
            "Retained",
            false,
            "Expired",
            match (&deleted_at, on_expiry) {
                (Some(d), OnExpiry::Delete) => {
                    format!("retention ended at {e}; data deleted at {}", d.0)
                }
                _ => format!(
                    "retention ended at {e}; onExpiry is Retain, delete the data or extend the retention"
                ),
            },
        ),
    };
    let compliant = if eval.is_compliant() && readers.is_empty() {
        Desired::new("Compliant", true, "AllControlsPass", "every control passes")
    } else {
        let mut messages: Vec<&str> = eval.findings.iter().map(|f| f.message.as_str()).collect();
        if !readers.is_empty() {
            messages.push(&access.message);
        }
        Desired::new("Compliant", false, "ControlsFailed", messages.join("; "))
    };
    let desired = vec![
        retained,
        access,
        if !foreign.is_empty() {
            name_conflict(&foreign)
        } else if let Some(message) = &forbidden {
            forbidden_condition(
                &format!(
                    "the Role and RoleBinding reading its credentials Secret in namespace {namespace:?}"
                ),
                message,
            )
        } else if !denied.is_empty() && dataset.spec.credentials_secret.is_some() {
            Desired::new(
                "Ready",
                false,
                "AccessWithheld",
                format!(
                    "the spec fails Enforce controls ({}): no access to the credentials Secret is granted (a Role or RoleBinding granted before is withdrawn): {}",
                    denied.join(", "),
                    withdrawal_reason(&eval)
                ),
            )
        } else {
            Desired::new("Ready", true, "Reconciled", "access and retention enforced")
        },
        compliant,
    ];
    let old = super::old_conditions(dataset);
    let merged = conditions::merge(&old, &desired, dataset.metadata.generation, now);
    ctx.publish_transitions(dataset, &old, &merged, |c| c.status == "False")
        .await;
    let status = TrainingDatasetStatus {
        common: CommonStatus {
            observed_generation: dataset.metadata.generation,
            conditions: merged,
            controls: eval.control_results(),
        },
        expires_at: expires_at.map(Time),
        deleted_at,
    };
    let api: Api<TrainingDataset> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, dataset, &status).await?;
    Ok(requeue_until(expires_at.filter(|_| !expired), now))
}

/// Why a dataset's grant is withdrawn: its Enforce findings, or a spec that no longer names a
/// Secret and a reader.
pub fn withdrawal_reason(eval: &policy::Evaluation) -> String {
    if eval.denials().next().is_some() {
        super::agent_policy::enforce_findings(eval)
    } else {
        "the spec no longer names a credentials Secret and a service account allowed to read it"
            .to_string()
    }
}

/// The controller of an object, described, when it has one (`StatefulSet "db"`).
pub fn foreign_controller(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{} {:?}", o.kind, o.name))
}
