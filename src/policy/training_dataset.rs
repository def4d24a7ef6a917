//! Rules for TrainingDataset: A.5.9, A.5.12, A.5.34, A.8.3, A.8.10, A.8.11, A.8.24.

use super::catalogue::{A_5_9, A_5_12, A_5_34, A_8_3, A_8_10, A_8_11, A_8_24};
use super::duration::{format_duration, parse_duration};
use super::{Context, Evaluation, ObjectRef, Recorder};
use crate::api::{Action, Classification, Kind, MaskingTechnique, OnExpiry, TrainingDataset};
use jiff::{SignedDuration, Timestamp};

pub const KIND: &str = Kind::TrainingDataset.name();

/// When the dataset's retention ends, if it declares one. `created` is the creation time
/// (`now` for an object not yet created).
pub fn expiry(dataset: &TrainingDataset, created: Timestamp) -> Result<Option<Timestamp>, String> {
    let Some(retention) = &dataset.spec.retention else {
        return Ok(None);
    };
    if let Some(until) = &retention.until {
        return Ok(Some(until.0));
    }
    match &retention.period {
        Some(period) => {
            let d = parse_duration(period).map_err(|e| format!("spec.retention.period: {e}"))?;
            created
                .checked_add(d)
                .map(Some)
                .map_err(|_| format!("spec.retention.period: {period:?} is too long"))
        }
        None => Ok(None),
    }
}

pub fn evaluate(dataset: &TrainingDataset, ctx: &Context<'_>) -> Evaluation {
    let name = dataset.metadata.name.as_deref().unwrap_or_default();
    let namespace = dataset.metadata.namespace.as_deref().unwrap_or("default");
    let mut rec = Recorder::new(KIND, ObjectRef::new(KIND, Some(namespace), name), ctx);
    let spec = &dataset.spec;
    let profile = ctx.profile;
    let class = spec.classification;
    let personal = spec.personal_data.as_ref().filter(|p| p.contains);

    // A.5.9 inventory: an accountable owner and an integrity checksum.
    if spec.owner.as_deref().is_none_or(|o| o.trim().is_empty()) {
        rec.fail(
            &A_5_9,
            "spec.owner",
            format_args!("dataset {name:?} has no owner"),
        );
    }
    if spec.source.sha256.is_none() {
        rec.fail(
            &A_5_9,
            "spec.source.sha256",
            format_args!("dataset {name:?} has no sha256 checksum of its content manifest"),
        );
    }

    // A.5.12 classification: lineage never downgrades; personal data is never Public.
    for (i, parent) in spec.derived_from.iter().enumerate() {
        match ctx.lookup.dataset(namespace, parent) {
            // Missing (not yet created) parents warn; see the same rule for models.
            None => rec.fail_capped(
                &A_5_12,
                format!("spec.derivedFrom[{i}]"),
                format_args!("dataset {name:?} derives from {parent:?}, which does not exist in namespace {namespace:?}, so its classification cannot be verified"),
                Action::Warn,
            ),
            Some(p) if p.spec.classification > class => rec.fail(
                &A_5_12,
                "spec.classification",
                format_args!(
                    "dataset {name:?} is {class} but derives from {parent:?}, which is {}",
                    p.spec.classification
                ),
            ),
            Some(_) => {}
        }
    }
    if personal.is_some() && class == Classification::Public {
        rec.fail(
            &A_5_12,
            "spec.classification",
            format_args!("dataset {name:?} contains personal data and cannot be Public"),
        );
    }

    // A.5.34 privacy: categories, region, retention; region allowed.
    let region = spec.residency.as_ref().map(|r| r.region.as_str());
    if let Some(region) = region
        && let Some(allowed) = &profile.allowed_regions
        && !allowed.iter().any(|r| r == region)
    {
        rec.fail(
            &A_5_34,
            "spec.residency.region",
            format_args!(
                "dataset {name:?} resides in {region:?}, outside the allowed regions {allowed:?}",
            ),
        );
    }
    match personal {
        Some(p) => {
            if p.categories.is_empty() {
                rec.fail(
                    &A_5_34,
                    "spec.personalData.categories",
                    format_args!("dataset {name:?} contains personal data but lists no categories"),
                );
            }
            if region.is_none() {
                rec.fail(
                    &A_5_34,
                    "spec.residency.region",
                    format_args!(
                        "dataset {name:?} contains personal data but declares no residency region"
                    ),
                );
            }
            if spec.retention.is_none() {
                rec.fail(
                    &A_5_34,
                    "spec.retention",
                    format_args!(
                        "dataset {name:?} contains personal data but declares no retention"
                    ),
                );
            }
        }
        None if region.is_none() => {
            rec.not_applicable(&A_5_34, "no personal data and no residency declared")
        }
        None => {}
    }

    // A.8.11 masking.
    match personal {
        None => rec.not_applicable(&A_8_11, "no personal data"),
        Some(p) => {
            let masked = p.masking.is_some_and(|m| m != MaskingTechnique::None);
            let justified = class == Classification::Restricted
                && p.justification
                    .as_deref()
                    .is_some_and(|j| !j.trim().is_empty());
            if !masked && !justified {
                rec.fail(
                    &A_8_11,
                    "spec.personalData.masking",
                    format_args!(
                        "dataset {name:?} contains personal data that is not masked (set a masking technique, or classify it Restricted with a justification)"
                    ),
                );
            }
        }
    }

    // A.8.24 cryptography.
    let encryption = spec.encryption.as_ref();
    if class >= profile.require_kms_from {
        match encryption.and_then(|e| e.kms_key.as_deref()) {
            None => rec.fail(
                &A_8_24,
                "spec.encryption.kmsKey",
                format_args!("dataset {name:?} is {class} and has no KMS key"),
            ),
            Some(key) if profile
                .allowed_key_prefixes
                .as_ref()
                .is_some_and(|prefixes| !prefixes.iter().any(|p| key.starts_with(p.as_str()))) =>
            {
                rec.fail(
                    &A_8_24,
                    "spec.encryption.kmsKey",
                    format_args!(
                        "dataset {name:?} uses KMS key {key:?}, which matches none of the allowed prefixes {:?}",
                        profile.allowed_key_prefixes.as_deref().unwrap_or_default()
                    ),
                )
            }
            Some(_) => {}
        }
    }
    if class >= Classification::Internal && encryption.and_then(|e| e.in_transit_tls) == Some(false)
    {
        rec.fail(
            &A_8_24,
            "spec.encryption.inTransitTLS",
            format_args!("dataset {name:?} is {class} and is read without TLS"),
        );
    }
    if spec.source.pvc.is_some()
        && let Some(classes) = &profile.encrypted_storage_classes
    {
        let sc = encryption.and_then(|e| e.storage_class.as_deref());
        if !sc.is_some_and(|sc| classes.iter().any(|c| c == sc)) {
            rec.fail(
                &A_8_24,
                "spec.encryption.storageClass",
                format_args!(
                    "dataset {name:?} is stored on a PVC whose StorageClass {} is not one of the encrypted classes {:?}",
                    sc.map_or("(unset)".to_string(), |s| format!("{s:?}")),
                    classes
                ),
            );
        }
    }
    if class < profile.require_kms_from
        && spec.source.pvc.is_none()
        && encryption.is_none_or(|e| e.in_transit_tls != Some(false))
    {
        rec.not_applicable(
            &A_8_24,
            format_args!(
                "{class} data: a KMS key is required from {}",
                profile.require_kms_from
            ),
        );
    }

    // A.8.3 access restriction.
    let allowed = spec
        .access
        .as_ref()
        .map_or(0, |a| a.allowed_service_accounts.len());
    if allowed == 0 {
        if spec.credentials_secret.is_some() {
            rec.fail(
                &A_8_3,
                "spec.access.allowedServiceAccounts",
                format_args!("dataset {name:?} has a credentials Secret but names no service account allowed to read it"),
            );
        } else if class >= Classification::Confidential {
            rec.fail(
                &A_8_3,
                "spec.access.allowedServiceAccounts",
                format_args!(
                    "dataset {name:?} is {class} and names no service account allowed to read it"
                ),
            );
        } else {
            rec.not_applicable(&A_8_3, format_args!("{class} data without credentials"));
        }
    }

    // A.8.10 deletion: retention declared where needed, within the maximum.
    let created = dataset
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(ctx.now, |t| t.0);
    let needs_retention = class >= Classification::Confidential || personal.is_some();
    match expiry(dataset, created) {
        Err(e) => rec.fail(&A_8_10, "spec.retention", e),
        Ok(None) if needs_retention => rec.fail(
            &A_8_10,
            "spec.retention",
            format_args!(
                "dataset {name:?} is {class}{} and declares no retention",
                if personal.is_some() {
                    " with personal data"
                } else {
                    ""
                }
            ),
        ),
        Ok(None) => rec.not_applicable(&A_8_10, format_args!("{class} data without personal data")),
        Ok(Some(expires)) => {
            let span = expires.duration_since(created);
            if span > profile.max_retention {
                rec.fail(
                    &A_8_10,
                    "spec.retention",
                    format_args!(
                        "dataset {name:?} is retained for {}, beyond the maximum of {}",
                        format_duration(span.max(SignedDuration::ZERO)),
                        format_duration(profile.max_retention)
                    ),
                );
            } else if expires <= ctx.now
                && spec.retention.as_ref().map(|r| r.on_expiry) == Some(OnExpiry::Retain)
            {
                rec.fail(
                    &A_8_10,
                    "spec.retention",
                    format_args!(
                        "dataset {name:?} is still retained after its retention ended at {expires} (onExpiry: Retain)"
                    ),
                );
            } else if expires <= ctx.now {
                rec.pass_note(
                    &A_8_10,
                    format_args!("retention ended at {expires}; the controller deletes the data"),
                );
            } else {
                rec.pass_note(&A_8_10, format_args!("retained until {expires}"));
            }
        }
    }

    rec.pass_note(&A_5_12, format_args!("classified {class}"));
    rec.finish()
}
